from __future__ import annotations

import re
from pathlib import Path

import pytest

from curate.cli import EXIT_USAGE, main
from curate.config import ConfigError
from curate.config.loading import load_config
from curate.contract import ALL_GATES
from curate.signals import SIGNALS

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS.glob("*.yaml")))
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / name)
    assert config.tiers


def readme_set_examples() -> list[tuple[str | None, str]]:
    """``(config file the line names or None, KEY=VALUE)`` of every ``--set`` in the README."""
    found = []
    # A shell command continued with a backslash is one line.
    text = (ROOT / "README.md").read_text().replace("\\\n", " ")
    for line in text.splitlines():
        named = re.search(r"(?:-c|--config)\s+configs/(\S+\.yaml)", line)
        for value in re.findall(r"--set\s+('[^']*'|\"[^\"]*\"|[^\s`]+)", line):
            found.append((named.group(1) if named else None, value.strip("'\"")))
    return found


def test_readme_has_set_examples():
    assert len(readme_set_examples()) >= 8


@pytest.mark.parametrize("config_file, override", readme_set_examples())
def test_every_readme_set_example_loads(config_file, override):
    load_config(CONFIGS / config_file if config_file else None, [override])


def test_config_reference_lists_every_signal_block_and_gate(capsys):
    assert main(["config"]) == 0
    text = capsys.readouterr().out
    keys = {line.split(":")[0] for line in text.splitlines() if line[:1] != " "}
    # A block's own default wins over its class's: ray.probe has 0.1 CPUs, not 0.5.
    assert "ray.probe.num_cpus: number  (default 0.1)" in text
    assert "dedup.kmeans.k: integer  (default 256)" in text
    assert "tiers[].gates.min_sharpness: number | percentile | null  (default null)" in text
    for signal in SIGNALS:
        for setting in signal.config.model_fields:
            key = f"{signal.section}.{signal.name}.{setting}"
            # a nested block is listed key by key
            assert any(k == key or k.startswith(key + ".") for k in keys), key
    assert {f"tiers[].gates.{g.key}" for g in ALL_GATES} <= keys


@pytest.mark.parametrize(("media", "count"), [("video", 3), ("image", 2)])
def test_movie_gen_has_nested_tiers_getting_stricter(media, count):
    tiers = [t for t in load_config(CONFIGS / "movie_gen.yaml").tiers if t.media == media]
    assert len(tiers) == count
    sides = [t.gates.min_short_side or 0 for t in tiers]
    sharp = [t.gates.min_sharpness or 0 for t in tiers]
    assert sides == sorted(sides) and sides[0] < sides[-1]
    assert sharp == sorted(sharp) and sharp[0] < sharp[-1]


def test_an_image_tier_refuses_a_gate_images_do_not_have():
    with pytest.raises(ConfigError, match=r"gates\.min_motion does not apply to images"):
        load_config(
            None, ["tiers.0.name=stills", "tiers.0.media=image", "tiers.0.gates.min_motion=0.1"]
        )


def test_unknown_key_names_its_path_and_the_closest_key(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("analyze:\n  flow:\n    fsp: 4\n")
    with pytest.raises(
        ConfigError, match=r"analyze\.flow\.fsp: unknown key \(did you mean 'fps'\?\)"
    ):
        load_config(path)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("analyze.flow.fsp=4", "analyze.flow.fsp: unknown key (did you mean 'fps'?)"),
        ("analyzee.flow.fps=4", "analyzee: unknown key (did you mean 'analyze'?)"),
        (
            "tiers.0.gates.min_sharpnes=p30",
            "tiers.0.gates.min_sharpnes: unknown key (did you mean 'min_sharpness'?)",
        ),
        # A captioner's backend is a union tag, not a key: the path is the key as written.
        ("caption.captioners.0.wieght=2", "caption.captioners.0.wieght: unknown key (did you "),
        (
            "analyze.flow.zzz=1",
            "analyze.flow.zzz: unknown key; expected one of method, fps, short_side",
        ),
    ],
)
def test_set_unknown_key_suggests_the_closest(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value)


@pytest.mark.parametrize("value", ["p300", "pabc", "p100.5", "sharp", "[1]"])
def test_bad_percentile_is_said_plainly(value):
    with pytest.raises(ConfigError) as e:
        load_config(None, [f"tiers.0.gates.min_sharpness={value}"])
    shown = value if value == "[1]" else repr(value)
    assert str(e.value) == (
        "invalid configuration:\n  tiers.0.gates.min_sharpness: expected a number or a "
        f"percentile p0–p100 such as p30, got {shown}"
    )


def test_out_of_range_gate_number_says_the_bound_once():
    with pytest.raises(ConfigError) as e:
        load_config(None, ["tiers.0.gates.max_text=2"])
    assert str(e.value) == (
        "invalid configuration:\n  tiers.0.gates.max_text: Input should be less than or equal "
        "to 1, got 2 (or a percentile p0–p100 such as p30)"
    )


@pytest.mark.parametrize("value", ["p0", "p30", "p99.5", "p100", "p100.0"])
def test_percentiles_from_p0_to_p100_are_accepted(value):
    assert (
        load_config(None, [f"tiers.0.gates.min_sharpness={value}"]).tiers[0].gates.min_sharpness
        == value
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "analyze.flow.fsp=4",
            "curate: invalid configuration:\n  analyze.flow.fsp: unknown key "
            "(did you mean 'fps'?)\n",
        ),
        (
            "tiers.0.gates.min_sharpness=p300",
            "curate: invalid configuration:\n  tiers.0.gates.min_sharpness: expected a number or "
            "a percentile p0–p100 such as p30, got 'p300'\n",
        ),
    ],
)
def test_cli_says_what_is_wrong_and_exits_2(override, message, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "-i", str(tmp_path), "-o", str(out), "--set", override]) == EXIT_USAGE
    assert capsys.readouterr().err == message
    assert not out.exists()


def test_wrong_type_names_its_path(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("tiers:\n  - name: a\n    gates: {min_sharpness: sharp}\n")
    with pytest.raises(ConfigError, match=r"tiers\.0\.gates\.min_sharpness"):
        load_config(path)


def test_set_overrides_any_key():
    config = load_config(
        CONFIGS / "default.yaml",
        ["analyze.flow.fps=4", "tiers.0.gates.min_sharpness=55.5", "export.mode=reference"],
    )
    assert config.analyze.flow.fps == 4
    assert config.tiers[0].gates.min_sharpness == 55.5
    assert config.export.mode == "reference"


def test_set_unknown_key_fails_with_path():
    with pytest.raises(ConfigError, match=r"analyze\.flow\.nope"):
        load_config(None, ["analyze.flow.nope=1"])
    with pytest.raises(ConfigError, match=r"tiers\.7"):
        load_config(None, ["tiers.7.name=x"])


def test_clip_durations_must_be_ordered():
    with pytest.raises(ConfigError, match=r"analyze\.clips"):
        load_config(None, ["analyze.clips.min_duration_s=10", "analyze.clips.max_duration_s=5"])


def test_cli_config_error_exits_2_before_any_work(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("export:\n  mode: sideways\n")
    out = tmp_path / "out"
    code = main(["run", "--config", str(path), "--input", str(tmp_path), "--output", str(out)])
    assert code == EXIT_USAGE
    assert "export.mode" in capsys.readouterr().err
    assert not out.exists()


def test_cli_bad_set_exits_2(tmp_path, capsys):
    code = main(["run", "-i", str(tmp_path), "-o", str(tmp_path / "o"), "--set", "ray.num_cpus=x"])
    assert code == EXIT_USAGE
    assert "ray.num_cpus" in capsys.readouterr().err


def test_cli_missing_input_exits_2(tmp_path, capsys):
    code = main(["run", "-i", str(tmp_path / "nope"), "-o", str(tmp_path / "o")])
    assert code == EXIT_USAGE
    assert "input not found" in capsys.readouterr().err


def test_borders_fps_moved_to_the_borders_block(tmp_path):
    assert load_config(None, ["analyze.borders_fps=4"]).analyze.borders.fps == 4
    old = tmp_path / "old.yaml"
    old.write_text("analyze:\n  borders_fps: 3\n")
    assert load_config(old).analyze.borders.fps == 3
    with pytest.raises(ConfigError, match=r"analyze\.borders\.fps"):
        load_config(None, ["analyze.borders_fps=-1"])


def test_media_follows_the_tiers_unless_given():
    assert load_config(None).media == ["video", "image"]
    assert load_config(CONFIGS / "demo.yaml").media == ["video"]  # video tiers only
    assert load_config(None, ["tiers=[{name: stills, media: image}]"]).media == ["image"]
    with pytest.raises(
        ConfigError, match=r"media: .*image is curated but no tier has media: image"
    ):
        load_config(CONFIGS / "demo.yaml", ["media=[video, image]"])
