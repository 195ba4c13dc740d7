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


def test_the_rejected_strip_shows_given_and_nearest_labels_under_a_legend(tmp_path):
    import tensorflow as tf

    from prism_tf.monitoring import captioned_grid, displayable

    model = PrismModel(small_cnn((8, 8, 3), 4), MemoryBank(16, 4, 3), PrismSelector(0.5, 4))
    model.compile(optimizer="adam")
    x = np.random.default_rng(0).random((10, 8, 8, 3), np.float32)
    y, is_noisy = np.arange(10) % 3, np.arange(10) % 2 == 0
    z = model(x).numpy()
    model.memory_bank.enqueue(z[:4], [0, 0, 2, 2])   # class 1 is not in memory
    names = ["zero", "one", "a class name too long for one tile"]
    monitor = CleanProbabilityMonitor(x, y, is_noisy, str(tmp_path), shown=4, class_names=names)
    monitor.set_model(model)
    monitor.on_epoch_end(0)
    [event] = [e for path in (tmp_path / "prism").glob("events.out.tfevents.*")
               for e in tf.compat.v1.train.summary_iterator(str(path))
               if any(v.tag == "most_often_rejected" for v in e.summary.value)]
    [value] = [v for v in event.summary.value if v.tag == "most_often_rejected"]
    assert "nearest" in value.metadata.summary_description
    shown = tf.io.decode_png(tf.make_ndarray(value.tensor)[2]).numpy()
    # The same picture from captions worked out here: the nearest of the
    # centres of classes 0 and 2.
    order = np.argsort(-monitor.rejections, kind="stable")[:4]
    centres = np.stack([z[:2].mean(0), z[2:4].mean(0)])
    nearest = np.array([0, 2])[(z[order] @ centres.T).argmax(1)]
    captions = [[f"given {y[i]} {names[y[i]]}", f"-> {n} {names[n]}",
                 f"rejected {monitor.rejections[i]}x"] for i, n in zip(order, nearest)]
    legend = ["most often rejected so far: given label -> the memory's nearest",
              "class centre, times below the selector's threshold",
              "frame: red = the label is wrong, green = right (ground truth)"]
    expected = captioned_grid(displayable(tf.gather(x, order)).numpy(), captions,
                              np.where(is_noisy[order], 1, 2), legend=legend)
    np.testing.assert_array_equal(shown, expected)


def test_a_caption_too_long_for_its_tile_is_cut_not_run_into_the_next():
    from prism_tf.monitoring import captioned_grid

    long = "given 7 " + "a very long class name " * 4
    picture = captioned_grid(np.zeros((2, 8, 8, 3)), [[long], [""]], columns=2, tile=32)
    cell_w, caption = 36, picture[8 * 4 + 4:, :]
    assert (caption[:, :cell_w] < 64).any()          # the first tile's text
    assert (caption[:, cell_w:] == 255).all()        # nothing over the second's
