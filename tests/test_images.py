"""Images beside videos: one run curates real photographs into image tiers, broken images become
rejects, the gates act on images as on video frames, and the image shards load as an image
dataset."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import VIDEOS, Photos, run_pipeline
from PIL import Image

from curate.inputs import discover, media_of
from curate.media.image import encode_image
from curate.output.validate import validate
from scripts.common.photos import ODD_IMAGES, letterbox_share, photo_path


def rows(folder, columns=None) -> list[dict]:
    return pq.read_table(folder, columns=columns).to_pylist()


@pytest.fixture(scope="module")
def image_run(request, ray_local, photos: Photos, tmp_path_factory):
    """The session's run over the shared videos and the photos where the shared footage is
    there; the photos alone otherwise."""
    if VIDEOS.is_dir():
        return request.getfixturevalue("shared_run")[0]
    out = tmp_path_factory.mktemp("images") / "out"
    assert run_pipeline([photos.folder], out) == 0
    return out


def by_name(table: list[dict]) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for r in table:
        found.setdefault(r["source"].rsplit("/", 1)[-1], []).append(r)
    return found


def test_one_run_writes_video_and_image_tiers_and_accounts_for_every_input(image_run, photos):
    assert validate(image_run) == []
    manifest = json.loads((image_run / "manifest.json").read_text())
    assert manifest["tiers"]["images"]["media"] == "image"
    assert manifest["tiers"]["images"]["clips"] >= len(photos.originals) - 1
    if VIDEOS.is_dir():
        assert manifest["tiers"]["default"]["media"] == "video"
        assert manifest["tiers"]["default"]["clips"] > 10
    analysis = rows(image_run / "analysis", ["source", "media"])
    rejected = {r["source"] for r in rows(image_run / "rejects", ["source"])}
    images = {r["source"] for r in analysis if r["media"] == "image"}
    for path in photos.folder.rglob("*"):
        if path.is_file():
            assert str(path) in images | rejected, path
    assert all(r["media"] == media_of(r["source"]) for r in analysis)


def test_broken_images_are_rejected_or_read_right(image_run, photos):
    rejects = by_name(rows(image_run / "rejects"))
    analysis = by_name(rows(image_run / "analysis", ["source", "width", "height", "thumbnail"]))
    for name, outcome in photos.broken.items():
        if outcome == "ok":
            (row,) = analysis[name]
            assert (row["width"], row["height"]) == ODD_IMAGES[name], name
        else:
            assert [(r["reason"], r["clip_id"]) for r in rejects[name]] == [(outcome, None)], name
    # The EXIF-rotated photo is read upright: its thumbnail is the cat photo as it ships.
    thumb = Image.open(io.BytesIO(analysis["exif_rotated.jpg"][0]["thumbnail"])).convert("L")
    cat = Image.open(photo_path("chelsea.png")).convert("L").resize(thumb.size)
    assert np.corrcoef(np.asarray(thumb).ravel(), np.asarray(cat).ravel())[0, 1] > 0.95
    # 16-bit samples are scaled to 8 bits, not clipped to white.
    gray16 = Image.open(io.BytesIO(analysis["gray16.png"][0]["thumbnail"])).convert("L")
    assert 60 < np.asarray(gray16).mean() < 160


def test_gates_act_on_images_as_on_video_frames(image_run, photos):
    analysis = by_name(rows(image_run / "analysis"))
    rejects = by_name(rows(image_run / "rejects"))
    for stem, copies in photos.copies.items():
        original = next(p for p in photos.originals if p.stem == stem)
        assert [r["reason"] for r in rejects[copies["blurred"].name]] == ["blurry"]
        assert analysis[original.name][0]["sharpness"] > 20.0
        (boxed,) = analysis[copies["letterboxed"].name]
        share = letterbox_share(Image.open(original).height)
        assert abs(boxed["border_top"] - share) <= 0.02
        assert abs(boxed["border_bottom"] - share) <= 0.02
        assert [r["reason"] for r in rejects[copies["captioned"].name]] == ["text_heavy"]
        # The photo, its half-size copy and its mirror image: one is kept (never the smaller
        # copy), the others are duplicates of it.
        group = [analysis[p.name][0] for p in (original, copies["downscaled"], copies["mirrored"])]
        kept = [r for r in group if r["duplicate_of"] is None]
        assert len(kept) == 1 and kept[0]["source"] != str(copies["downscaled"]), stem
        for r in group:
            if r is not kept[0]:
                assert r["duplicate_of"] == kept[0]["clip_id"] and r["duplicate_span"] is None
                assert [x["reason"] for x in rejects[r["source"].rsplit("/", 1)[-1]]] == [
                    "duplicate"
                ]


def test_image_shards_load_as_an_image_dataset(image_run):
    import datasets
    import pandas as pd

    folder = image_run / "tiers" / "images"
    table = pq.read_table(folder)
    assert table.num_rows > 0 and "image" in table.column_names
    assert not {"start_s", "video", "clip_path", "motion_score"} & set(table.column_names)
    frame = pd.read_parquet(folder)
    assert len(frame) == table.num_rows and frame["prompt"].notna().all()
    files = [str(p) for p in sorted(folder.glob("*.parquet"))]
    loaded = datasets.load_dataset("parquet", data_files=files, split="train")
    assert isinstance(loaded.features["image"], datasets.Image)
    for row in loaded:
        picture = row["image"]
        assert isinstance(picture, Image.Image)
        assert picture.size == (row["width"], row["height"]), row["source"]
        assert row["caption"] and row["prompts"]


@pytest.mark.skipif(not VIDEOS.is_dir(), reason="needs the shared footage next to the checkout")
def test_frames_of_a_video_are_kept_beside_its_clips(image_run, photos):
    """No cross-kind merge by default: a frame exported from a video is an image of its own."""
    analysis = rows(image_run / "analysis", ["clip_id", "source", "media", "duplicate_of"])
    media = {r["clip_id"]: r["media"] for r in analysis}
    frames = [r for r in analysis if r["source"] in {str(p) for p in photos.frames}]
    assert len(frames) == len(photos.frames)
    assert all(r["duplicate_of"] is None or media[r["duplicate_of"]] == "image" for r in frames)


def test_media_setting_picks_what_a_folder_yields(photos):
    found = discover([str(photos.folder)])
    assert found and all(media_of(s) == "image" for s in found)
    assert discover([str(photos.folder)], media=["video"]) == []
    # A named image in a videos-only run is left out (with a warning), not read as video.
    assert discover([str(photos.originals[0])], media=["video"]) == []


def test_images_are_exported_as_they_are_or_re_encoded():
    data = photo_path("rocket.jpg").read_bytes()
    assert encode_image(data, "original", 90) == (data, "original")
    # A tier's short side above the image's leaves it as it is (never upscaled).
    assert encode_image(data, "original", 90, short_side=1024) == (data, "original")
    scaled, how = encode_image(data, "original", 90, short_side=200)
    assert how == "jpeg" and Image.open(io.BytesIO(scaled)).size == (300, 200)
    png = photo_path("coffee.png").read_bytes()
    cropped, how = encode_image(png, "webp", 80, crop=[0.1, 0.1, 0.0, 0.0])
    picture = Image.open(io.BytesIO(cropped))
    assert how == "webp" and picture.format == "WEBP" and picture.size == (600, 320)


def test_a_run_of_images_only_leaves_the_videos_out(ray_local, photos, tmp_path):
    from scripts.common.synth import still_frames, textured_image, write_video

    folder = tmp_path / "mixed"
    folder.mkdir()
    for photo in photos.originals[:2]:
        (folder / photo.name).write_bytes(photo.read_bytes())
    write_video(folder / "still.mp4", still_frames(textured_image(3), 150))
    out = tmp_path / "out"
    assert run_pipeline([folder], out, "--set", "media=[image]") == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["inputs"]["discovered"] == 2
    assert {r["media"] for r in rows(out / "analysis", ["media"])} == {"image"}
    assert validate(out) == []


def test_a_web_address_over_a_photo_reads_as_a_watermark(tmp_path):
    """On a still, the watermark signal's reading half works: a stock site's address."""
    from PIL import ImageDraw, ImageFont

    from curate import contract, schema
    from curate.config.loading import load_config
    from curate.media.image import probe_image
    from stages.analyze import analyze_image
    from stages.detect import DetectStage

    marked = Image.open(photo_path("coffee.png")).convert("RGB")
    font = ImageFont.load_default(size=22)
    ImageDraw.Draw(marked).text(
        (380, 360), "www.stockphotos.com", fill="white", font=font, stroke_width=1
    )
    path = tmp_path / "marked.png"
    marked.save(path)
    config = load_config(None)
    info = probe_image(str(path), max_pixels=config.probe.max_pixels)
    analyzed = analyze_image(str(path), info, config.analyze, config.probe.max_pixels)
    analyzed.update(source=str(path), source_index=0)
    table = schema.from_rows([analyzed], contract.ANALYZED_SOURCE)
    (clip,) = DetectStage.from_config(config)(table).to_pylist()[0]["clips"]
    assert clip["watermark_kind"] == "text" and clip["watermark_score"] > 0.5
    assert clip["watermark_box"]["y0"] > 0.8  # the bottom line


ODD_FORMATS = {
    "gray.jpg": lambda im: im.convert("L"),
    "la.png": lambda im: im.convert("LA"),
    "palette.png": lambda im: im.convert("P"),
    "palette.gif": lambda im: im.convert("P"),
    "rgba.png": lambda im: im.convert("RGBA"),
    "bilevel.png": lambda im: im.convert("1"),
    "cmyk.tiff": lambda im: im.convert("CMYK"),
    "gray16.tiff": lambda im: Image.fromarray(np.asarray(im.convert("L"), np.uint16) * 257),
    "float.tiff": lambda im: Image.fromarray(np.asarray(im.convert("L"), np.float32) / 255),
    "rgba.webp": lambda im: im.convert("RGBA"),
    "photo.bmp": lambda im: im,
}


@pytest.mark.parametrize("name", [*ODD_FORMATS, "animated.gif", "animated.webp"])
def test_every_kind_of_image_reaches_the_signals_as_the_photo(name, tmp_path):
    """Grey, palette, bi-level, alpha, CMYK, 16-bit and float pictures, and the first frame
    of an animation, all reach the signals as the photo they show."""
    from curate.media.image import decode_image, probe_image

    photo = Image.open(photo_path("coffee.png")).convert("RGB")
    path = tmp_path / name
    if name.startswith("animated"):
        turned = [photo.rotate(angle) for angle in (30, 60)]
        photo.save(path, save_all=True, append_images=turned, duration=100)
    else:
        ODD_FORMATS[name](photo).save(path)
    info = probe_image(str(path), max_pixels=1 << 26)
    assert (info.width, info.height) == photo.size
    gray = decode_image(str(path), info, 256, 1 << 26, 540).gray
    expected = np.asarray(photo.convert("L").resize((gray.shape[1], gray.shape[0])), np.float32)
    assert np.corrcoef(expected.ravel(), gray.ravel().astype(np.float32))[0, 1] > 0.9
