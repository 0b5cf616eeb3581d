import os
import sys

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# A threaded server's request threads share one interpreter lock. A thread back from
# PostgreSQL waits for it until the running one lets go, by default after 5 ms, and may hold
# the org's activity-chain row lock all that while (its COMMIT is next). Handing the lock on
# after 1 ms gave 205-214 versions/s where 5 ms gave 189-195, at less CPU per version
# (docs/operations.md, bench-http).
sys.setswitchinterval(0.001)
