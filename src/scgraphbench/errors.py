"""User-facing errors: each names the file, the field and the fix."""

from __future__ import annotations


class ScgbError(Exception):
    """An error caused by the user's input or config, reported without a traceback."""

    def __init__(self, message: str, *, path: str | None = None, field: str | None = None,
                 fix: str | None = None) -> None:
        parts = []
        if path:
            parts.append(f"{path}")
        if field:
            parts.append(f"field '{field}'")
        head = ": ".join(parts)
        text = f"{head}: {message}" if head else message
        if fix:
            text += f"\n  fix: {fix}"
        super().__init__(text)
        self.message, self.path, self.field, self.fix = message, path, field, fix

    def at(self, path: str) -> ScgbError:
        """The same error, naming the file it was found in."""
        return ScgbError(self.message, path=path, field=self.field, fix=self.fix)
