"""Create the import roots and a small sample data set in the first one."""

from django.core.management.base import BaseCommand

from project.imports.importer import user_roots
from project.imports.samples import create_roots, create_sample


class Command(BaseCommand):
    help = "Create the import roots (settings.IMPORT_ROOTS) and a sample data set in the first."
    requires_system_checks = []  # it fixes what imports.W001 reports

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-sample", action="store_true", help="only create the roots")
        parser.add_argument(
            "--user",
            help="put the sample in this user's folder (<root>/<user>/, with IMPORT_USER_FOLDERS)",
        )

    def handle(self, *args, no_sample: bool = False, user: str | None = None, **options) -> None:
        roots = create_roots()
        for root in roots:
            self.stdout.write(f"import root: {root}")
        if user is not None:
            roots = user_roots(user)
            if not roots:
                self.stderr.write(f"{user!r} cannot have a folder of its own")
            for folder in roots:
                folder.mkdir(parents=True, exist_ok=True)
                self.stdout.write(f"{user}'s import folder: {folder}")
        if roots and not no_sample:
            sample = create_sample(roots[0])
            self.stdout.write(f'sample data set: {sample} (request it as path "{sample.name}")')
