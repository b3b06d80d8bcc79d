"""Take the README's screenshots of a running Tasklight with headless Chromium.

    uv run main.py --no-show --port 8731 &            # a fresh --data-dir gives an empty history
    uv run python docs/screenshots/take.py http://127.0.0.1:8731

Needs /usr/bin/chromium and /usr/bin/chromedriver. Writes PNGs next to this file.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

HERE = Path(__file__).resolve().parent
SIZE = (1280, 900)
EMBED_SIZE = (600, 240)  # the README's iframe example


def sample_csv(rows: int = 400) -> str:
    """Made-up sensor readings: a text column, two numeric ones, a few gaps."""
    rng = random.Random(4)
    lines = ["station,temperature_c,humidity_pct"]
    for i in range(rows):
        station = rng.choice(["north", "south", "harbour", "airport"])
        temp = f"{rng.gauss(14, 6):.1f}"
        humidity = "" if i % 37 == 0 else f"{rng.uniform(30, 95):.0f}"
        lines.append(f"{station},{temp},{humidity}")
    return "\n".join(lines) + "\n"


def driver() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 f"--window-size={SIZE[0]},{SIZE[1]}", "--hide-scrollbars"):  # fmt: skip
        options.add_argument(flag)
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def status(browser: webdriver.Chrome) -> str:
    chips = browser.find_elements(By.CSS_SELECTOR, ".tl-status")
    words = [c.text.strip().splitlines()[-1] for c in chips if c.text.strip()]
    return words[0] if words else ""


def wait_status(browser: webdriver.Chrome, *wanted: str, seconds: float = 60) -> None:
    WebDriverWait(browser, seconds, 0.1).until(lambda b: status(b) in wanted)


def ready(browser: webdriver.Chrome) -> None:
    WebDriverWait(browser, 30).until(
        ec.element_to_be_clickable((By.XPATH, "//button[.//span[normalize-space()='Submit']]"))
    )


def set_field(browser: webdriver.Chrome, label: str, value: str) -> None:
    field = browser.find_element(By.XPATH, f"//label[.//div[normalize-space()='{label}']]//input")
    field.click()
    field.send_keys("\ue009a")  # Ctrl+A
    field.send_keys(value)


def choose_job(browser: webdriver.Chrome, title: str) -> None:
    browser.find_element(By.XPATH, "//label[.//div[normalize-space()='Job']]").click()
    WebDriverWait(browser, 10).until(
        ec.element_to_be_clickable((By.XPATH, f"//div[@role='option'][.//span[text()='{title}']]"))
    ).click()


def upload(browser: webdriver.Chrome, path: Path) -> None:
    WebDriverWait(browser, 10).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "input[type=file]")
    )[0].send_keys(str(path))
    WebDriverWait(browser, 20).until(
        lambda b: path.name in b.find_element(By.CSS_SELECTOR, "body").text
    )


def submit(browser: webdriver.Chrome) -> None:
    browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Submit']]").click()


def shoot(browser: webdriver.Chrome, name: str) -> None:
    time.sleep(0.6)  # let animations (progress bar, chart) settle
    browser.save_screenshot(str(HERE / f"{name}.png"))
    print(f"wrote {name}.png")


def main(base: str) -> None:
    base = base.rstrip("/")
    work = Path(tempfile.mkdtemp(prefix="tasklight-shots-"))
    csv_path = work / "stations.csv"
    csv_path.write_text(sample_csv())
    browser = driver()
    try:
        browser.get(f"{base}/")
        ready(browser)
        shoot(browser, "landing")

        set_field(browser, "Steps", "8")
        submit(browser)
        wait_status(browser, "processing")
        WebDriverWait(browser, 20, 0.1).until(lambda b: "step 3 of 8" in b.page_source)
        shoot(browser, "running")
        wait_status(browser, "completed")

        set_field(browser, "Steps", "3")
        set_field(browser, "Step seconds", "0.3")
        set_field(browser, "Fail at step (optional)", "2")
        submit(browser)
        wait_status(browser, "failed")
        shoot(browser, "failed")

        choose_job(browser, "CSV profile")
        upload(browser, csv_path)
        submit(browser)
        wait_status(browser, "completed")
        WebDriverWait(browser, 20).until(
            lambda b: b.find_elements(By.CSS_SELECTOR, ".nicegui-echart canvas")
        )
        browser.set_window_size(SIZE[0], 2000)
        shoot(browser, "completed-chart")
        browser.set_window_size(*SIZE)
        items = browser.find_elements(By.CSS_SELECTOR, ".tl-history-item")
        items[-1].click()  # the oldest task: the first demo
        wait_status(browser, "completed")
        shoot(browser, "history")

        browser.get(f"{base}/kiosk")
        WebDriverWait(browser, 30).until(
            ec.element_to_be_clickable((By.XPATH, "//button[.//span[normalize-space()='Start']]"))
        )
        browser.find_element(By.XPATH, "//button[.//span[normalize-space()='Start']]").click()
        WebDriverWait(browser, 20, 0.1).until(lambda b: "step 2 of 5" in b.page_source)
        shoot(browser, "kiosk")

        # The README's iframe is EMBED_SIZE; the running embed must fit it without a scrollbar.
        width, height = EMBED_SIZE
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        browser.get(f"{base}/embed?kind=demo&steps=4&step_seconds=0.5")
        WebDriverWait(browser, 30).until(
            ec.element_to_be_clickable((By.XPATH, "//button[.//span[contains(., 'Run Demo')]]"))
        ).click()
        WebDriverWait(browser, 20, 0.1).until(lambda b: "step 2 of 4" in b.page_source)
        height = browser.execute_script("return document.documentElement.scrollHeight")
        inner = browser.execute_script("return window.innerHeight")
        print(f"embed content {height} px high in a {inner} px viewport")
        if height > inner:
            print(f"warning: the embed needs {height} px; raise the README's iframe height")
        shoot(browser, "embed")
    finally:
        browser.quit()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8731")
