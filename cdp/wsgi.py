import os

from django.core.wsgi import get_wsgi_application

from cdp.collector import collector_tune

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
application = get_wsgi_application()
collector_tune()  # once the application is loaded (cdp.collector)
