"""Running registered figures: build and save one (:func:`render`), and write the
report of a run (:func:`format_report`), with the lemma report after it."""

from __future__ import annotations

import pathlib
import time
import traceback
from typing import NamedTuple

from stability.figures._base import NotAvailable, Quality


class FigureResult(NamedTuple):
    """One row of the report."""

    id: str
    name: str
    title: str
    status: str  # "ok", "not available" or "failed"
    seconds: float
    files: tuple
    caption: str
    numbers: dict
    reason: str


def render(fid: str, out: pathlib.Path, quality: Quality) -> FigureResult:
    """Build one figure, save it as PNG and PDF into ``out``, and return its row."""
    import matplotlib.pyplot as plt

    from stability import plotting
    from stability.figures import FIGURES

    spec = FIGURES[fid]
    start = time.perf_counter()
    try:
        drawn = spec.build(quality)
        files = tuple(
            str(p)
            for p in plotting.save(drawn.figure, out / spec.name, dpi=quality.dpi)
        )
        status, reason = "ok", ""
        caption, numbers = drawn.caption, drawn.numbers
    except NotAvailable as err:
        status, reason, files, caption, numbers = "not available", str(err), (), "", {}
    except Exception as err:  # a failed figure must not stop the others
        status, files, caption, numbers = "failed", (), "", {}
        reason = f"{type(err).__name__}: {err}"
        traceback.print_exc()
    finally:
        plt.close("all")
    return FigureResult(
        fid,
        spec.name,
        spec.title,
        status,
        time.perf_counter() - start,
        files,
        caption,
        numbers,
        reason,
    )


def lemma_report(quality: Quality) -> tuple[str, str]:
    """The lemma report as Markdown, and an error line ('' if it ran)."""
    try:
        from stability import lemmas

        rows = lemmas.report(num_instances=quality.pick(20, 200))
    except Exception as err:
        traceback.print_exc()
        return "", f"{type(err).__name__}: {err}"
    return lemmas.format_report(rows), ""


def format_report(results, lemma_text, lemma_error, quality, seconds) -> str:
    """``REPORT.md``: every figure's status, caption, key numbers and files, then
    what was skipped and why, then the lemma report."""
    ok = [r for r in results if r.status == "ok"]
    skipped = [r for r in results if r.status == "not available"]
    failed = [r for r in results if r.status == "failed"]
    lines = [
        "# `stability reproduce` report",
        "",
        f"Quality: **{quality.name}**. Wall time {seconds:.1f} s. "
        f"{len(ok)} figure(s) drawn, {len(skipped)} not yet available, "
        f"{len(failed)} failed.",
        "",
        "| figure | status | time (s) |",
        "|---|---|---|",
    ]
    for r in results:
        lines.append(f"| `{r.name}` | {r.status} | {r.seconds:.1f} |")
    lines.append("")
    for r in results:
        lines += [f"## `{r.name}`: {r.title}", ""]
        if r.status == "ok":
            lines += [r.caption, "", "| quantity | value |", "|---|---|"]
            lines += [f"| {k} | {v} |" for k, v in r.numbers.items()]
            files = ", ".join(f"`{pathlib.Path(f).name}`" for f in r.files)
            lines += ["", f"Files: {files}", ""]
        else:
            lines += [f"**{r.status}**: {r.reason}", ""]
    lines += ["## Skipped and failed", ""]
    if not skipped and not failed:
        lines.append("Nothing was skipped.")
    for r in skipped + failed:
        lines.append(f"- `{r.name}` ({r.status}): {r.reason}")
    if lemma_error:
        lines.append(f"- lemma report (failed): {lemma_error}")
    lines.append("")
    text = "\n".join(lines)
    if lemma_text:
        # demote the lemma report's headings one level under this report
        demoted = "\n".join(
            "#" + ln if ln.startswith("#") else ln for ln in lemma_text.splitlines()
        )
        text += "\n" + demoted + "\n"
    return text
