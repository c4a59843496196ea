import os
import warnings

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.settings")
# WhiteNoise hands Django a file iterator, which the ASGI handler reads in a thread (static files are small);
# the warning says so on every static file and would bury the log.
warnings.filterwarnings("ignore", message="StreamingHttpResponse must consume synchronous iterators")
application = get_asgi_application()
