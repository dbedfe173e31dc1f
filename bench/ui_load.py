"""How long the canvas takes to draw a big workflow in headless Chromium, and what the server
holds in memory meanwhile.

    .venv/bin/python bench/ui_load.py             # 500 nodes / 600 edges, 3 loads
    .venv/bin/python bench/ui_load.py --quick     # 1 load
    .venv/bin/python bench/ui_load.py --chains 200  # 2,000 nodes / 2,400 edges
    .venv/bin/python bench/ui_load.py --against ../main  # and another checkout's, loads alternating

A 500-node, 600-edge workflow (50 chains of 9 templates and an aggregate, plus 150 cross edges
into the aggregates' `many` ports) is saved through the API; the editor page is then opened in
Debian's Chromium, timed from navigation to every node and edge of the fitted view being in the
DOM. Also: one zoom step, timed until the transform has been applied, and the server process's
resident memory. With --against, a second server runs another checkout of nodeloom (a baseline:
main, a release) over its own database; its loads alternate with this checkout's in the same
browser, so both see the same machine, and the ratios are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.browser import CHROMIUM_FLAGS, chromium, server

CHAINS, LENGTH = 50, 10
TARGETS_S = {500: 1.5, 2000: 4.0}  # drawn within, by node count
ZOOM_TARGET_MS = 50


def big_workflow(chains: int = CHAINS) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    for chain in range(chains):
        for step in range(LENGTH):
            node_id = f"n{chain}_{step}"
            if step == LENGTH - 1:
                nodes.append({"id": node_id, "type": "aggregate", "params": {"mode": "list"}})
            else:
                nodes.append({"id": node_id, "type": "template",
                              "params": {"template": "{{ x }}" if step else "start"}})
            nodes[-1]["ui"] = {"x": step * 260, "y": chain * 110}
            if step:
                port = "items" if step == LENGTH - 1 else "x"
                edges.append({"from": f"n{chain}_{step - 1}.text", "to": f"{node_id}.{port}"})
    for chain in range(chains):  # 3 more edges per chain into the last column's `many` ports
        for offset in (1, 2, 3):
            source = f"n{(chain + offset) % chains}_{LENGTH - 3}.text"
            edges.append({"from": source, "to": f"n{chain}_{LENGTH - 1}.items"})
    return {"schema_version": 1, "name": "Big", "nodes": nodes, "edges": edges}


def drawn(browser: webdriver.Chrome) -> tuple[int, int]:
    return (
        len(browser.find_elements(By.CSS_SELECTOR, "[data-node-id]")),
        len(browser.find_elements(By.CSS_SELECTOR, "[data-edge]")),
    )


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


ZOOM_STEP = """
const done = arguments[arguments.length - 1];
const pane = document.querySelector('.vue-flow__transformationpane');
const before = pane.style.transform;
const started = performance.now();
document.querySelector('.vue-flow__pane').dispatchEvent(new WheelEvent('wheel',
  {deltaY: -100, clientX: 600, clientY: 400, bubbles: true, cancelable: true}));
const wait = () => pane.style.transform !== before
  ? requestAnimationFrame(() => done(performance.now() - started))
  : requestAnimationFrame(wait);
wait();
"""


def load_once(browser: webdriver.Chrome, url: str, document: dict[str, Any]) -> tuple[float, float]:
    """(seconds until every node and edge is drawn, milliseconds of one zoom step)."""
    started = time.perf_counter()
    browser.get(url)
    while drawn(browser) < (len(document["nodes"]), len(document["edges"])):
        if time.perf_counter() - started > 120:
            raise SystemExit("the workflow was not drawn within 2 minutes")
        time.sleep(0.02)
    draw = time.perf_counter() - started
    return draw, float(browser.execute_async_script(ZOOM_STEP))


def main(loads: int, chains: int = CHAINS, against: Path | None = None) -> None:
    found = chromium()
    if found is None:
        raise SystemExit("chromium and chromedriver are needed: run scripts/system-deps")
    document = big_workflow(chains)
    with contextlib.ExitStack() as stack:
        targets: dict[str, dict[str, Any]] = {}
        names = ["this"] + (["against"] if against else [])
        for name in names:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory()))
            base_url = stack.enter_context(
                server(folder) if name == "this" else server(folder, root=against or Path()))
            answer = httpx.post(f"{base_url}/api/workflows", json=document, timeout=30)
            answer.raise_for_status()
            targets[name] = {"url": f"{base_url}/workflows/{answer.json()['id']}",
                             "folder": folder, "draws": [], "zooms": []}
        options = webdriver.ChromeOptions()
        options.binary_location = found[0]
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        browser = webdriver.Chrome(service=Service(found[1]), options=options)
        try:
            for load in range(loads):
                for name in names if load % 2 == 0 else names[::-1]:  # neither always first
                    draw, zoom = load_once(browser, targets[name]["url"], document)
                    targets[name]["draws"].append(draw)
                    targets[name]["zooms"].append(zoom)
        finally:
            browser.quit()
        for target in targets.values():
            target["memory"] = resident_mib(int(Path(target["folder"], "server.pid").read_text()))
    print(f"{len(document['nodes'])} nodes / {len(document['edges'])} edges, {loads} load(s) each")
    target = TARGETS_S.get(len(document["nodes"]))
    for name in names:
        draws, zooms = targets[name]["draws"], targets[name]["zooms"]
        label = "this checkout" if name == "this" else f"against {against}"
        print(f"{label}:")
        print(f"  drawn in: median {statistics.median(draws):.2f} s "
              f"(min {min(draws):.2f}, max {max(draws):.2f})"
              + (f" (target <= {target} s)" if target else ""))
        print(f"  one zoom step: median {statistics.median(zooms):.0f} ms "
              f"(min {min(zooms):.0f}, max {max(zooms):.0f}) (target <= {ZOOM_TARGET_MS} ms)")
        print(f"  server resident memory: {targets[name]['memory']:.0f} MiB")
    if against:
        this, other = targets["this"], targets["against"]
        print(f"ratio this/against: drawn "
              f"{statistics.median(this['draws']) / statistics.median(other['draws']):.2f}, "
              f"zoom {statistics.median(this['zooms']) / statistics.median(other['zooms']):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one load")
    parser.add_argument("--chains", type=int, default=CHAINS,
                        help=f"chains of {LENGTH} nodes (default {CHAINS}: 500 nodes)")
    parser.add_argument("--loads", type=int, default=3, help="loads of each checkout")
    parser.add_argument("--against", type=Path,
                        help="another checkout of nodeloom to measure alongside (a baseline)")
    arguments = parser.parse_args()
    main(1 if arguments.quick else arguments.loads, arguments.chains,
         arguments.against.resolve() if arguments.against else None)
