"""The one peak-memory mechanism (`recgoat_lib.memory`): readings, the high-water mark and its reset."""
import numpy as np

from recgoat_lib.memory import current_memory, peak_memory, reset_peak_memory


def test_peak_rss_is_positive_and_sees_an_allocation():
    before = peak_memory().rss_mb
    assert before > 0
    # the peak is a high-water mark: only a block larger than the process's peak so far must raise it
    block = np.ones(int((before + 64) * 2**20) // 8)
    assert peak_memory().rss_mb >= before + 32
    del block


def test_reset_starts_a_new_peak_at_the_current_rss():
    block = np.ones(64 * 2**20 // 8)  # 64 MB resident
    del block
    reset_peak_memory(release_heap=True)
    now, peak = current_memory(), peak_memory()
    assert now.rss_mb <= peak.rss_mb < now.rss_mb + 32  # the freed block is no longer part of the peak
    block = np.ones(64 * 2**20 // 8)
    assert peak_memory().rss_mb - now.rss_mb >= 48  # the extra peak of what ran after the reset
    del block
