"""Admin words from Django and third-party apps whose own zh-Hans catalogues lack them.

Marked here (never called) so that `makemessages` keeps their entries in our catalogue, which
Django reads before the apps' own (LOCALE_PATHS first). Each msgid is the exact text of its
source; brand names (Django, Celery, Axes) stay as they are in any language.
"""

from django.utils.translation import gettext_noop

THIRD_PARTY_TEXTS = [
    # django.contrib.admin 5.x app_list.html: column headers for screen readers.
    gettext_noop("Model name"),
    gettext_noop("Add link"),
    gettext_noop("Change or view list link"),
    # django-axes (no zh-Hans catalogue): its models' names.
    gettext_noop("access attempt"),
    gettext_noop("access attempts"),
    gettext_noop("access failure"),
    gettext_noop("access failures"),
    gettext_noop("access log"),
    gettext_noop("access logs"),
    gettext_noop("access attempt expiration"),
    gettext_noop("access attempt expirations"),
    # django-celery-results: the app's and its models' names.
    gettext_noop("Celery Results"),
    gettext_noop("task result"),
    gettext_noop("task results"),
    gettext_noop("group result"),
    gettext_noop("group results"),
]
