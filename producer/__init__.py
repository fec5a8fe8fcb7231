"""The producer side of the distributed mode: submit, status, results, retry, cancel."""
