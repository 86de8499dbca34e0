"""Create an API token for a user and print it (the only time it is shown)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from project.imports.models import ApiToken
from project.imports.validation import clean_email


class Command(BaseCommand):
    help = (
        "Create an API token for USER and print it. Send it as 'Authorization: Bearer <token>'. "
        "Only its digest is stored: copy it now."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="default", help="what the token is for")
        parser.add_argument(
            "--email", help="create the user with this address if it does not exist"
        )
        parser.add_argument(
            "--replace", action="store_true", help="delete the user's token of the same name first"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        with transaction.atomic():
            lookup = {users.USERNAME_FIELD: options["username"]}
            user = users._default_manager.filter(**lookup).first()
            if user is None:
                if not options["email"]:
                    raise CommandError(
                        f"no user {options['username']!r}: pass --email to create one"
                    )
                try:
                    email = clean_email(options["email"])
                except ValueError as error:
                    raise CommandError(f"--email {error}") from None
                user = users._default_manager.create_user(
                    options["username"], email=email, password=None
                )
            if options["replace"]:
                ApiToken.objects.filter(user=user, name=options["name"]).delete()
            elif ApiToken.objects.filter(user=user, name=options["name"]).exists():
                raise CommandError(
                    f"{user} has a token named {options['name']!r} already (use --replace)"
                )
            _, key = ApiToken.create(user, options["name"])
        self.stdout.write(key)
