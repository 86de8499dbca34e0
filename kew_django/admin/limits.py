"""The limits screen: each limit's values in force, and the values an operator sets over them.

A blank field keeps the value declared in code or ``KEW["LIMITS"]``; a
value typed here holds from the next start on, in every process, without
a restart (``kew_django.limits``).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin

from kew_django.limits.declared import Limit
from kew_django.limits.status import declared_limits
from kew_django.models import LimitSetting

FIELDS = ("concurrency", "per_key", "rate", "key_rate")


class LimitSettingForm(forms.ModelForm):
    class Meta:
        model = LimitSetting
        fields = ["name", *FIELDS]

    def clean(self):
        """Refuse values a limit cannot have (a count below 1, a rate not above 0)."""
        data = super().clean()
        problems = Limit(**{f: data.get(f) for f in FIELDS}).problems()
        if problems:
            raise forms.ValidationError(problems)
        return data


@admin.register(LimitSetting)
class LimitSettingAdmin(admin.ModelAdmin):
    form = LimitSettingForm
    list_display = ["name", "declared", *FIELDS, "updated_at"]
    list_editable = list(FIELDS)
    search_fields = ["name"]
    ordering = ["name"]

    @admin.display(description="declared (code, settings)")
    def declared(self, row: LimitSetting) -> str:
        """Show the values the code and settings declare, under the operator's."""
        found = declared_limits().get(row.name)
        if found is None:
            return "-"
        limit = found[0]
        parts = [f"{f}={getattr(limit, f)}" for f in FIELDS if getattr(limit, f) is not None]
        return ", ".join(parts) or "-"
