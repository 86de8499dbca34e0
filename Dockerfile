# One image for every process of the reference application: the web server,
# the relay and the consumers (see docker-compose.yml). Settings come from the
# environment: DATABASE_URL, KEW_BROKER_URL, EMAIL_URL, DJANGO_*, IMPORT_*.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=project.settings \
    IMPORT_ROOTS=/data/imports

WORKDIR /app
COPY pyproject.toml README.md manage.py ./
COPY kew ./kew
COPY kew_django ./kew_django
COPY project ./project
# An editable install keeps templates and migrations where Django looks for them.
RUN pip install --no-cache-dir -e '.[artemis,django,postgres]' 'django-environ>=0.11' \
        'gunicorn>=23' 'whitenoise>=6.7' \
    && DJANGO_SECRET_KEY=build python manage.py collectstatic --noinput \
    && useradd --create-home --uid 1000 kew \
    && mkdir -p /app/var /data/imports \
    && chown kew /app/var /data/imports

USER kew
EXPOSE 8000
# A production WSGI server; WhiteNoise (DJANGO_SERVE_STATIC=true) serves the
# static files collected above.
ENV DJANGO_SERVE_STATIC=true
CMD ["gunicorn", "project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "30"]
