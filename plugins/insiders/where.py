"""Where the results of the local runs are (printed after `make run`)."""

from __future__ import annotations

from .config import Settings
from .stores import store_from


def main() -> None:
    settings = Settings.from_env()
    with store_from(settings) as store:
        runs = [r["run_id"] for r in store.complete_runs()]
    latest = runs[-1] if runs else None
    print("\nInsiders results")
    print(f"  complete runs:   {', '.join(runs) or 'none'}")
    if latest:
        folder = settings.home / "runs" / latest
        print(f"  report:          {folder / 'report.html'}")
        print(f"  answers:         {folder / 'answers.json'}")
        print(f"  Insiders list:   {folder / 'insiders.csv'}")
    print(f"  documents:       {settings.mongo_uri or settings.home / 'documents'} "
          f"(database {settings.mongo_db})")
    print(f"  SQL store:       {settings.sql_url_or_default}")
    print("  static dashboard: make dashboard")


if __name__ == "__main__":
    main()
