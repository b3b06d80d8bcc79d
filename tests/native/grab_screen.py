"""Save a PNG of the whole X display and print how many colours it has (run in a subprocess).

python tests/native/grab_screen.py OUT.png      # uses $DISPLAY; needs PyQt6
"""

from __future__ import annotations

import sys

from PyQt6.QtGui import QGuiApplication

SAMPLE_STEP = 8


def main(path: str) -> int:
    app = QGuiApplication(["grab"])
    screen = app.primaryScreen()
    if screen is None:
        print("no screen", file=sys.stderr)
        return 2
    image = screen.grabWindow(0).toImage()
    image.save(path)
    colours = {
        image.pixel(x, y)
        for x in range(0, image.width(), SAMPLE_STEP)
        for y in range(0, image.height(), SAMPLE_STEP)
    }
    print(len(colours))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
