import numpy as np
import pytest

from prism_tf import MemoryBank, PrismModel, PrismSelector
from prism_tf.encoders import small_cnn
from prism_tf.monitoring import CleanProbabilityMonitor, image_grid


def test_image_grid_frames_each_image():
    rows = np.full((2, 3, 4, 5, 3), 0.5, np.float32)
    grid = image_grid(rows, border=np.array([[0, 1, 2], [2, 1, 0]])).numpy()
    assert grid.shape == (1, 2 * 6, 3 * 7, 3)
    assert grid[0, 0, 7].tolist() == pytest.approx([0.9, 0.1, 0.1])   # red frame
    assert grid[0, 0, 14].tolist() == pytest.approx([0.1, 0.8, 0.1])  # green frame
    assert grid[0, 1, 1].tolist() == pytest.approx([0.5, 0.5, 0.5])   # image


@pytest.mark.parametrize("window", [[], [0.0, 2.0]])
def test_rejections_use_the_window_mean_or_else_the_noise_rate(tmp_path, window):
    model = PrismModel(small_cnn((8, 8, 3), 4), MemoryBank(16, 4, 3), PrismSelector(0.5, 4))
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).random((10, 8, 8, 3), np.float32)
    y = np.arange(10) % 3
    model.memory_bank.enqueue(model(x[:6]), y[:6])
    for q in window:
        model.selector.window.assign(np.roll(model.selector.window.numpy(), -1))
        model.selector.window[-1].assign(q)
    model.selector.window_count.assign(len(window))
    monitor = CleanProbabilityMonitor(x, y, np.arange(10) % 2 == 0, str(tmp_path), shown=4)
    monitor.set_model(model)
    monitor.on_epoch_end(0)
    if window:  # mean 1.0: every probability is at or below it
        assert monitor.rejections.tolist() == [1] * 10
    else:       # no window yet: the noise_rate quantile, about half
        assert monitor.rejections.sum() == 5
