"""Assertions shared by the corrector backend tests."""

from __future__ import annotations

from manuscribe.correctors.guards import GuardConfig, rejection_reason


def check_guarded(blocks, results) -> None:
    """One result per block, with a reason; applied ones pass the guards, others have no text."""
    assert len(results) == len(blocks)
    for block, result in zip(blocks, results, strict=True):
        assert result.reason
        if result.status == "applied":
            assert rejection_reason(block.text, result.text, GuardConfig()) is None
        else:
            assert result.text is None
