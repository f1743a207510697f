"""One entry point for every report format."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from runbook_engine.report.html import render_html
from runbook_engine.report.jsonout import render_json
from runbook_engine.report.junit import render_junit
from runbook_engine.report.markdown import render_markdown
from runbook_engine.report.model import RunReport


class Format(StrEnum):
    MARKDOWN = "md"
    HTML = "html"
    JSON = "json"
    JUNIT = "junit"


RENDERERS: dict[Format, Callable[[RunReport], str]] = {
    Format.MARKDOWN: render_markdown,
    Format.HTML: render_html,
    Format.JSON: render_json,
    Format.JUNIT: render_junit,
}

SUFFIX: dict[Format, str] = {
    Format.MARKDOWN: ".md",
    Format.HTML: ".html",
    Format.JSON: ".json",
    Format.JUNIT: ".junit.xml",
}


def render(report: RunReport, fmt: Format) -> str:
    return RENDERERS[fmt](report)
