"""The page budget of one paged read, on plain numbers (the reads through a hostile vendor are in
tests/test_hostile_vendor.py)."""

from __future__ import annotations

from reconciler.providers.paging import MAX_PAGES, PAGE_SLACK, PageBudget


def _pages_until_refused(budget: PageBudget, total: int | None) -> tuple[int, str]:
    while True:
        refused = budget.more(total)
        if refused is not None:
            return budget.pages, refused


def test_a_count_is_believed_up_to_what_the_account_holds() -> None:
    assert _pages_until_refused(PageBudget("subscribers", page_size=200), 3) == (
        1 + PAGE_SLACK,
        "paging did not end after 4 pages for 3 subscribers",
    )
    held = PageBudget("subscribers", page_size=200, capacity=1000)
    assert _pages_until_refused(held, 10**9) == (
        5 + PAGE_SLACK,
        "paging did not end after 8 pages: the answers count 1000000000 subscribers, but the"
        " account holds at most 1000",
    )
    # a count within what it holds is believed as it is
    within = PageBudget("subscribers", page_size=200, capacity=1000)
    assert _pages_until_refused(within, 400)[0] == 2 + PAGE_SLACK


def test_the_largest_count_any_page_gave_sizes_the_budget() -> None:
    budget = PageBudget("accounts", page_size=200)
    assert budget.more(10) is None
    assert budget.more(1000) is None  # members joined while it paged
    assert _pages_until_refused(budget, 10) == (
        5 + PAGE_SLACK,
        "paging did not end after 8 pages for 1000 accounts",
    )


def test_without_a_count_a_read_takes_at_most_max_pages() -> None:
    assert _pages_until_refused(PageBudget("accounts", page_size=200), None) == (
        MAX_PAGES,
        f"paging did not end after {MAX_PAGES} pages",
    )


def test_the_deadline_counts_from_the_budget_s_start_whatever_the_counts_say() -> None:
    now = [100.0]
    budget = PageBudget("subscribers", page_size=200, deadline=2.5, clock=lambda: now[0])
    assert budget.more(10**6) is None
    now[0] = 102.4
    assert budget.more(10**6) is None
    now[0] = 102.5
    assert budget.more(10**6) == (
        "paging did not end within 2.5s (limits.readDeadlineSeconds), after 3 pages"
    )
