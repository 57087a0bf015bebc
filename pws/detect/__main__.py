"""``python -m pws.detect``: see :mod:`pws.detect.app`."""

from pws.detect.app import main

if __name__ == "__main__":
    main()
