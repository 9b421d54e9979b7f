"""Building blocks of the operators' web console: the reader check, tables, generic list views.

Pages are class-based views over selectors. A page describes its table as `Column`s; one
template include (`console/_table.html`) renders every table of the console.
"""
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.mixins import LoginRequiredMixin, UserPassesTestMixin
from django.contrib.auth.views import redirect_to_login
from django.http import HttpResponse
from django.views.generic import ListView

from monitoring.selectors import pipeline_status

from .roles import is_operator, is_reader


class ReaderRequiredMixin(LoginRequiredMixin, UserPassesTestMixin):
    """Console pages need a login and a reader role (Viewer, CAB member or any operator group).

    Anonymous users go to the login page; logged-in users without a reader role get 403. An htmx
    request from an expired session gets HX-Redirect, so the whole page (not the panel) goes to login."""

    def test_func(self) -> bool:
        return is_reader(self.request.user)

    def handle_no_permission(self):
        request = self.request
        if not request.user.is_authenticated and getattr(request, "htmx", False):
            current = request.htmx.current_url_abs_path or request.get_full_path()
            login = redirect_to_login(current, self.get_login_url(), self.get_redirect_field_name())
            return HttpResponse(status=204, headers={"HX-Redirect": login["Location"]})
        return super().handle_no_permission()


class OperatorRequiredMixin(ReaderRequiredMixin):
    """Console actions that change the pipeline need an operator role (Operations Team or above)."""

    def test_func(self) -> bool:
        return is_operator(self.request.user)


class ConsolePageMixin(ReaderRequiredMixin):
    """Context every full console page needs: its title, its sidebar entry and the status badge."""

    title = ""
    nav = ""

    def get_title(self) -> str:
        return self.title

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            title=self.get_title(),
            nav=self.nav,
            pipeline_status=pipeline_status(),
            user_is_operator=is_operator(self.request.user),
        )
        return context


@dataclass(frozen=True)
class Column:
    """One table column. `key` is a dotted path into the row (attribute, dict key or method).

    kind: text, number, time, status (coloured by value), bool (yes/no), check (yes green,
    no red), short (first 8 characters, full value on hover), code, json (folded, pretty).
    `link(row)` returns the URL the cell links to, or None.
    """

    header: str
    key: str
    kind: str = "text"
    link: Callable[[Any], str | None] | None = None


@dataclass
class Table:
    columns: Sequence[Column]
    rows: Iterable[Any]
    title: str = ""
    empty: str = "Nothing recorded yet."
    row_class: Callable[[Any], str] | None = None
    more_url: str = ""
    more_label: str = "All"


@dataclass
class Field:
    """A label/value pair of a detail page's summary, rendered like a table cell."""

    label: str
    value: Any
    kind: str = "text"
    link: str | None = None


def resolve(row: Any, key: str) -> Any:
    value = row
    for part in key.split("."):
        if value is None:
            return None
        value = value.get(part) if isinstance(value, Mapping) else getattr(value, part, None)
        if callable(value):
            value = value()
    return value


class ConsoleListView(ConsolePageMixin, ListView):
    """A filtered, paginated table over a selector's queryset (or list).

    Subclasses set `columns`, and `filterset_class` when the list has filters; `get_base_queryset`
    calls the app's selector. The same FilterSet serves the API's list of the same thing."""

    template_name = "console/list.html"
    paginate_by = 50
    columns: Sequence[Column] = ()
    filterset_class = None
    empty = "Nothing recorded yet."
    intro = ""

    def get_base_queryset(self):
        raise NotImplementedError

    def get_queryset(self):
        rows = self.get_base_queryset()
        self.filterset = None
        if self.filterset_class is not None:
            self.filterset = self.filterset_class(self.request.GET, queryset=rows)
            rows = self.filterset.qs
        return rows

    def get_row_class(self, row) -> str:
        return ""

    def get_extra_tables(self) -> list[Table]:
        return []

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            filterset=self.filterset,
            intro=self.intro,
            table=Table(columns=self.columns, rows=context["object_list"], empty=self.empty, row_class=self.get_row_class),
            extra_tables=self.get_extra_tables(),
        )
        return context
