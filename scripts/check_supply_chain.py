"""Fail the install if a known-malicious litellm artefact is present (1.82.8 shipped litellm_init.pth)."""

import site
import sys
from pathlib import Path

BAD_FILES = ("litellm_init.pth",)

found = [str(path) for root in site.getsitepackages() for name in BAD_FILES if (path := Path(root) / name).exists()]
if found:
    sys.exit(f"Refusing to continue: malicious litellm artefact found: {', '.join(found)}")
print("supply-chain check: ok")
