"""The height and width an encoded image declares, read from its header
before it is decoded, so that a small file cannot make the server decode
or resize an enormous image.

A 1.2 KB PNG of 1 x 400,000 pixels took 7.55 GB and 18 s in `embed_encoded`
(the shorter side is resized up first); a PNG of 50,000 x 50,000 pixels
decodes to 7.5 GB. `check_declared_size` refuses both before any decoding.

>>> import numpy as np
>>> png = tf.io.encode_png(np.zeros((3, 5, 1), np.uint8))
>>> declared_size(png).numpy().tolist()
[3, 5]
"""

import tensorflow as tf

MAX_PIXELS = 64_000_000    # 8,000 x 8,000: a large photo, 192 MB of RGB
MAX_ASPECT_RATIO = 20.0    # longer side / shorter side: wide panoramas pass

_PNG = b"\x89PNG\r\n\x1a\n"


def _unsigned(data: tf.Tensor, offset: int, length: int, big_endian: bool) -> tf.Tensor:
    """The unsigned integer of `length` bytes at `offset`, as int64."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, length), tf.uint8), tf.int64)
    powers = tf.constant([256 ** i for i in range(length)], tf.int64)
    return tf.reduce_sum(raw * (powers[::-1] if big_endian else powers))


def declared_size(data: tf.Tensor) -> tf.Tensor:
    """int64 [height, width] from a JPEG, PNG, GIF or BMP header; an
    InvalidArgumentError for other bytes (or a header cut short)."""
    def png():
        return tf.stack([_unsigned(data, 20, 4, True), _unsigned(data, 16, 4, True)])

    def gif():
        return tf.stack([_unsigned(data, 8, 2, False), _unsigned(data, 6, 2, False)])

    def bmp():
        # The height is signed (negative: rows stored top-down).
        height = _unsigned(data, 22, 4, False)
        height = tf.where(height >= 2 ** 31, 2 ** 32 - height, height)
        return tf.stack([height, _unsigned(data, 18, 4, False)])

    def jpeg():
        return tf.cast(tf.image.extract_jpeg_shape(data)[:2], tf.int64)

    def unknown():
        tf.debugging.Assert(False, ["not a JPEG, PNG, GIF or BMP image"])
        return tf.zeros([2], tf.int64)

    head = tf.strings.substr(data, 0, 8)
    return tf.case([(tf.strings.substr(head, 0, 3) == b"\xff\xd8\xff", jpeg),
                    (head == _PNG, png),
                    (tf.strings.substr(head, 0, 3) == b"GIF", gif),
                    (tf.strings.substr(head, 0, 2) == b"BM", bmp)], default=unknown)


def check_declared_size(data: tf.Tensor) -> tf.Tensor:
    """`declared_size`, asserted to hold at most `MAX_PIXELS` pixels at an
    aspect ratio of at most `MAX_ASPECT_RATIO` (InvalidArgumentError)."""
    size = declared_size(data)
    short, long = tf.reduce_min(size), tf.reduce_max(size)
    with tf.control_dependencies([
            tf.debugging.Assert(short > 0, ["the image declares no pixels:", size]),
            tf.debugging.Assert(size[0] * size[1] <= MAX_PIXELS, [
                f"the image declares more than {MAX_PIXELS:,} pixels (height, width):", size]),
            tf.debugging.Assert(long <= tf.cast(MAX_ASPECT_RATIO, tf.int64) * short, [
                f"the image's sides differ by more than {MAX_ASPECT_RATIO:g} times "
                "(height, width):", size])]):
        return tf.identity(size)


def refusal_reason(error: tf.errors.InvalidArgumentError) -> str:
    """What a failed check or decode says, without TensorFlow's framing
    (eager: "Summarized data: ..."; in a graph: "assertion failed: [...]").

    >>> try:
    ...     check_declared_size(tf.io.encode_png(tf.zeros([1, 40, 1], tf.uint8)))
    ... except tf.errors.InvalidArgumentError as error:
    ...     print(refusal_reason(error))
    the image's sides differ by more than 20 times (height, width): 1, 40
    """
    text = error.message
    if "Summarized data: " in text:
        parts = text.split("Summarized data: ", 1)[1].splitlines()
        return " ".join(part.strip()[2:-1] if part.strip()[:2] in ('b"', "b'")
                        else part.strip() for part in parts if part.strip())
    if "assertion failed: [" in text:
        line = text.split("assertion failed: [", 1)[1].splitlines()[0]
        message, _, data = line.partition("] [")
        return f"{message.replace(chr(92), '')} {data.rstrip(']').replace(' ', ', ')}".strip()
    return text.strip().splitlines()[0]
