"""Import one module in a fresh process; report whether litellm came with it (`python -m bench.import_check MOD`)."""

from __future__ import annotations

import importlib
import json
import sys


def main() -> None:
    """Print one JSON line: the module, whether litellm is in `sys.modules`, and how many modules are loaded."""
    module = sys.argv[1]
    importlib.import_module(module)
    print(json.dumps({"module": module, "litellm_imported": "litellm" in sys.modules, "modules": len(sys.modules)}))


if __name__ == "__main__":
    main()
