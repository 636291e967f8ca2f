"""What ``config.json`` and ``metrics.jsonl`` say about a run, for the header of every page
(images and speech): the last held-out record and the table of training settings."""

from __future__ import annotations

from typing import Any

Rows = list[tuple[str, object]]


def subtitle(saved: dict[str, Any]) -> str:
    return f"data: {saved.get('data', '?')} · preset: {saved.get('preset') or 'none'}"


def last_test(records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The last held-out evaluation in metrics.jsonl, or None before the first."""
    tests = [r for r in records if r.get("split") == "test"]
    return tests[-1] if tests else None


def training_rows(
    saved: dict[str, Any], records: list[dict[str, Any]], prior_meta: dict[str, Any] | None
) -> Rows:
    """Data, preset, overrides, steps done, batch size, learning rate, seed, and the prior."""
    t = saved.get("train", {})
    steps_done = max((r.get("step", 0) for r in records), default=0)
    rows: Rows = [
        ("data", saved.get("data", "?")),
        ("preset", saved.get("preset") or "none"),
        ("overrides", " ".join(saved.get("overrides") or []) or "none"),
        ("steps", f"{steps_done} of {t.get('steps', '?')}"),
        ("batch size", t.get("batch_size", "?")),
        ("learning rate", t.get("lr", "?")),
        ("seed", t.get("seed", "?")),
    ]
    if prior_meta:
        cond = prior_meta.get("config", {}).get("num_classes", 0)
        given = f"conditioned on {cond} classes" if cond else "unconditional"
        rows.append(("prior", f"{prior_meta.get('class', '?')}, {given}"))
    return rows
