import os
import sys
from pathlib import Path

_root = Path(__file__).resolve().parent.parent.parent
for _p in (str(_root / "platform"), str(_root)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagging_platform.settings")

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()
