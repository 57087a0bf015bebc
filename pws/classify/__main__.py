"""``python -m pws.classify [overrides]``: see configs/classify.yaml and pws/classify/__init__.py."""

from pws.classify.app import main

if __name__ == "__main__":
    main()
