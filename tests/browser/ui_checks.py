"""What every page must pass: axe-core, 375 px without horizontal scroll, screenshots kept.

`audit(page, name, controls)` runs axe-core (bundled by axe-playwright-python, no network) on the
page as it is, fails on any violation of impact "serious" or "critical", saves a full-page
screenshot 1280 px wide, then narrows the viewport to 375 px: the page must not scroll sideways
(document.documentElement.scrollWidth <= 375) and each of `controls` must be visible and inside
the viewport's width; a second screenshot, and the viewport is 1280 px again.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from ui_site import ARTIFACTS

try:
    from playwright.sync_api import expect
except ImportError:  # pragma: no cover - the `browser` fixture skips (fails under CI) with the reason
    expect = None

WIDE = {"width": 1280, "height": 900}
NARROW = {"width": 375, "height": 812}
BLOCKING = ("serious", "critical")

Controls = Callable[[Any], Iterable[Any]]


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's violations of impact serious or critical on the page as it is now."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [v for v in results.response["violations"] if v.get("impact") in BLOCKING]


def describe(violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, n.get("target", []))) for n in v.get("nodes", [])][:5]
        lines.append(f"{v['impact']}: {v['id']}: {v['help']} ({len(v.get('nodes', []))} nodes: {targets})")
    return "\n".join(lines)


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"), full_page=True)


def main_nav(page: Any) -> list[Any]:
    nav = page.get_by_role("navigation", name="Main")
    return [nav.get_by_role("link", name=n, exact=True) for n in ("Overview", "Provisioning log", "API")]


def audit(page: Any, name: str, controls: Controls | None = None) -> None:
    """axe, the screenshots at 1280 and 375 px, and the 375 px layout checks (see the module)."""
    page.set_viewport_size(WIDE)
    expect(page.locator("main")).to_be_visible()
    bad = axe_violations(page)
    screenshot(page, f"{name}-1280")
    assert not bad, f"axe on {name} ({page.url}):\n{describe(bad)}"
    page.set_viewport_size(NARROW)
    try:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        screenshot(page, f"{name}-375")
        assert scroll_width <= NARROW["width"], (
            f"{name} scrolls sideways at 375 px: scrollWidth {scroll_width} ({page.url})"
        )
        wanted = [
            page.get_by_role("heading", level=1),
            *main_nav(page),
            *(controls(page) if controls else []),
        ]
        for control in wanted:
            expect(control).to_be_visible()
            control.scroll_into_view_if_needed()
            box = control.bounding_box()
            assert box is not None, f"{control} has no box at 375 px"
            assert box["x"] >= 0 and box["x"] + box["width"] <= NARROW["width"] + 0.5, (
                f"{control} is not within the 375 px viewport on {name}: {box}"
            )
    finally:
        page.set_viewport_size(WIDE)
