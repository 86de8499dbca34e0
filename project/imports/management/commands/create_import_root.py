"""Create the import roots and a small sample data set in the first one."""

from django.core.management.base import BaseCommand

from project.imports.samples import create_roots, create_sample


class Command(BaseCommand):
    help = "Create the import roots (settings.IMPORT_ROOTS) and a sample data set in the first."
    requires_system_checks = []  # it fixes what imports.W001 reports

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-sample", action="store_true", help="only create the roots")

    def handle(self, *args, no_sample: bool = False, **options) -> None:
        roots = create_roots()
        for root in roots:
            self.stdout.write(f"import root: {root}")
        if roots and not no_sample:
            sample = create_sample(roots[0])
            self.stdout.write(f'sample data set: {sample} (request it as path "{sample.name}")')
