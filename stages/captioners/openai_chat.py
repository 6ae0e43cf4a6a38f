"""OpenAI-compatible chat-completions captioner (vLLM, SGLang, TGI, hosted APIs).

Each clip is one request: its keyframes as ``image_url`` data URLs and the instruction that
asks for the caption's JSON fields. Requests run ``concurrency`` at a time per actor. 429,
5xx, timeouts, connection errors and malformed replies are retried with exponential backoff
(a 429's ``Retry-After`` is honoured up to ``backoff_max_s``); other 4xx answers are final.
The API key travels only in the ``Authorization`` header and is masked out of every error.
"""

from __future__ import annotations

import base64
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from curate.caption.structured import (
    REPLY_JSON_SCHEMA,
    ClipInfo,
    MalformedReply,
    instruction,
    parse_reply,
)
from curate.config.sections import OpenAICaptionerConfig
from stages.captioners.base import Captioner, CaptionOutcome, Secret

log = logging.getLogger(__name__)

ERROR_BODY_CHARS = 200
"""How much of an error response's body is kept in ``detail``."""


class Retryable(Exception):
    """An attempt that failed in a way another attempt may not."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Final(Exception):
    """An answer that another attempt would not change (401, 404, 400, ...)."""


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None  # an HTTP date, or absent: use the backoff


def reply_text(data: object) -> str:
    """The assistant message text of a chat-completions response."""
    try:
        content = data["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise MalformedReply("response has no choices[0].message.content") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise MalformedReply("message content is not text")
    return content


class OpenAICaptioner(Captioner):
    def __init__(
        self,
        cfg: OpenAICaptionerConfig,
        api_key: Secret | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self._key = api_key.reveal() if api_key else None
        headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
        self.client = httpx.Client(
            base_url=cfg.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(cfg.timeout_s),
            limits=httpx.Limits(max_connections=cfg.concurrency),
        )
        self.pool = ThreadPoolExecutor(cfg.concurrency, thread_name_prefix=f"caption-{cfg.name}")
        self._sleep = sleep

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()

    def caption(self, clips: list[ClipInfo]) -> list[CaptionOutcome]:
        return list(self.pool.map(self.caption_one, clips))

    def request_body(self, clip: ClipInfo) -> dict:
        images = [
            {
                "type": "image_url",
                "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(j).decode()},
            }
            for j in clip.images
        ]
        text = instruction(len(clip.images), clip.duration_s, clip.media)
        body: dict = {
            "model": self.cfg.model,
            "messages": [{"role": "user", "content": [*images, {"type": "text", "text": text}]}],
            "max_tokens": self.cfg.max_tokens,
            "temperature": self.cfg.temperature,
        }
        if self.cfg.response_format == "json_object":
            body["response_format"] = {"type": "json_object"}
        elif self.cfg.response_format == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "caption", "schema": REPLY_JSON_SCHEMA},
            }
        return {**body, **self.cfg.extra_body}

    def caption_one(self, clip: ClipInfo) -> CaptionOutcome:
        if not clip.images:
            return CaptionOutcome(error="no keyframes to show the model")
        body = self.request_body(clip)
        attempts = self.cfg.max_retries + 1
        for attempt in range(attempts):
            try:
                return CaptionOutcome(fields=self._attempt(body))
            except Final as e:
                return CaptionOutcome(error=self._mask(str(e)))
            except Retryable as e:
                last = e
            if attempt + 1 < attempts:
                self._sleep(self._delay(attempt, last.retry_after))
        return CaptionOutcome(error=self._mask(f"{last} (gave up after {attempts} attempts)"))

    def _attempt(self, body: dict) -> dict[str, str | None]:
        try:
            response = self.client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise Retryable(f"timed out after {self.cfg.timeout_s:g} s") from None
        except httpx.TransportError as e:
            raise Retryable(f"connection error: {type(e).__name__}: {e}") from None
        status = response.status_code
        if status == 429 or status >= 500:
            raise Retryable(f"HTTP {status}: {self._body(response)}", _retry_after(response))
        if status >= 400:
            raise Final(f"HTTP {status}: {self._body(response)} (not retried)")
        try:
            return parse_reply(reply_text(response.json()))
        except MalformedReply as e:
            raise Retryable(f"malformed reply: {e}") from None
        except ValueError:
            raise Retryable(
                f"malformed reply: response is not JSON: {self._body(response)}"
            ) from None

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = self.cfg.backoff_s * 2**attempt
        # Jitter spreads the retries of many clips that failed together.
        delay = backoff * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return min(delay, self.cfg.backoff_max_s)

    def _body(self, response: httpx.Response) -> str:
        text = " ".join(response.text.split())
        return repr(text[:ERROR_BODY_CHARS] + ("…" if len(text) > ERROR_BODY_CHARS else ""))

    def _mask(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text
