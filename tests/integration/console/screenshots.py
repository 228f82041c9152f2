"""Screenshots of the console's main pages for the README: ``python -m
tests.integration.console.screenshots`` (writes ``docs/console/*.png``).

The same real authority and Chromium as the browser tests, with a little history: an
owner with calls issued, refused and waiting for approval, an auditor, an admin.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from .browser import (
    ROOT,
    authority,
    chromium,
    enrol,
    new_owner,
    new_person,
    person_page,
    registries,
)

OUT = ROOT / "docs" / "console"


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as data,
        authority(Path(data)) as running,
        chromium() as browser,
    ):
        registries(running)
        owner = new_owner(running)
        for resource in ("acme/web", "acme/api", "acme/docs"):
            owner.exchange("github.issues.create", resource, "create")
        owner.exchange("github.issues.create", "other/repo", "create")
        owner.exchange("deploy.run", "prod/web", "run")
        time.sleep(1)
        with person_page(browser, height=760) as page:
            enrol(page, owner.link)
            page.screenshot(path=str(OUT / "owner-approvals.png"), full_page=True)
            page.goto(running.url + "/console/owner/kill")
            page.get_by_label("Why (recorded in the ledger)").fill("the agent's key leaked")
            page.get_by_role("button", name="Stop all my agents").click()
            page.get_by_role("heading", name="Everything is stopped").wait_for()
            page.screenshot(path=str(OUT / "owner-kill-switch.png"), full_page=True)
        time.sleep(1)
        with person_page(browser, height=760) as page:
            enrol(page, new_person(running, "auditor"))
            page.goto(f"{running.url}/console/ledger?owner={owner.owner_id}")
            page.screenshot(path=str(OUT / "auditor-ledger.png"), full_page=True)
            page.goto(running.url + "/console/charts")
            page.screenshot(path=str(OUT / "auditor-charts.png"), full_page=True)
        with person_page(browser, height=760) as page:
            enrol(page, running.admin_link)
            page.screenshot(path=str(OUT / "admin-tools.png"), full_page=True)
    for path in sorted(OUT.glob("*.png")):
        print(path.relative_to(ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
