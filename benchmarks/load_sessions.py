"""Many students at once: N browser sessions against one `streamlit run app.py` on loopback.

Each session opens the Heads page with its own text, waits for the heatmap, then opens a
second page with the same text. With several --models, session i uses the i-th (in turn), so
the server holds them all at once. Rounds repeat this so the server's memory can be seen to
reach a plateau instead of growing with sessions. Prints a markdown table.

From the project folder:

    .venv/bin/python -m benchmarks.load_sessions [--sessions 20] [--rounds 3] [--page scaling] [--models minilm smollm2]
"""
import argparse
import asyncio
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from playwright.async_api import async_playwright

from tests.helpers import CHROMIUM_ARGS, streamlit_process

SESSION_TIMEOUT_MS = 600_000


class MemorySampler(threading.Thread):
    """Samples the server's resident memory (MB) twice a second."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.samples, self.running = pid, [], True

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def run(self):
        while self.running:
            self.samples.append(self.rss_mb())
            time.sleep(0.5)


async def wait_idle(page) -> None:
    await page.wait_for_selector('[data-testid="stApp"]')
    await page.wait_for_timeout(400)
    await page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached", timeout=SESSION_TIMEOUT_MS)


async def session(browser, url: str, number: int, second_page: str, model: str) -> tuple[float, float, bool]:
    """(seconds to first heatmap, seconds for the second page, any error shown)."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(SESSION_TIMEOUT_MS)
    query = urllib.parse.urlencode({"model": model, "text": f"Student {number} asks why the cat sat on mat number {number}."})
    start = time.perf_counter()
    await page.goto(f"{url}/?{query}")
    await page.locator('[data-testid="stPlotlyChart"] .hm').first.wait_for()
    await wait_idle(page)
    first = time.perf_counter() - start
    start = time.perf_counter()
    await page.goto(f"{url}/{second_page}?{query}")
    await wait_idle(page)
    second = time.perf_counter() - start
    errors = await page.locator('[data-testid="stException"], [data-testid="stAlertContentError"]').count()
    await context.close()
    return first, second, errors > 0


async def main(args) -> None:
    with streamlit_process(Path(tempfile.mkdtemp())) as server:
        sampler = MemorySampler(server.process.pid)
        sampler.start()
        idle_mb = sampler.rss_mb()
        print(f"{args.sessions} sessions x {args.rounds} rounds, models {', '.join(args.models)}, second page "
              f"'{args.page}', server idle at {idle_mb:.0f} MB")
        print("| round | sessions | errors | first view p50 / p90 / max | second page p50 / max | server memory after |")
        print("|---:|---:|---:|---|---|---:|")
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                                           args=list(CHROMIUM_ARGS))
                for round_number in range(1, args.rounds + 1):
                    results = await asyncio.gather(*(session(browser, server.url, i, args.page,
                                                             args.models[i % len(args.models)])
                                                     for i in range(args.sessions)))
                    firsts = sorted(r[0] for r in results)
                    seconds = sorted(r[1] for r in results)
                    p90 = firsts[int(0.9 * (len(firsts) - 1))]
                    print(f"| {round_number} | {len(results)} | {sum(r[2] for r in results)} "
                          f"| {statistics.median(firsts):.1f} / {p90:.1f} / {firsts[-1]:.1f} s "
                          f"| {statistics.median(seconds):.1f} / {seconds[-1]:.1f} s | {sampler.rss_mb():.0f} MB |")
                await browser.close()
        finally:
            sampler.running = False
    loads = server.log.read_text().count("loading model")
    print(f"\nmodel loads in the server log: {loads}; peak server memory {max(sampler.samples):.0f} MB")

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--page", default="scaling", help="url path of the second page each session opens")
    parser.add_argument("--models", nargs="+", default=["minilm"], help="model specs, used by the sessions in turn")
    asyncio.run(main(parser.parse_args()))
