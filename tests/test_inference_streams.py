"""Two pages read at once by two copies of the models read what one copy reads page by page, in order.

(Readings depend a little on which crops share a recognition batch, so pages are compared read
one per call on both sides: three images on two streams are calls of two and one.)"""
import threading

import config
from aplicador_ocr import AplicadorOCR, inference_streams
from ocr.image_safety import ImageRejected
from tools.receipt_generator import generate_receipt


def _engine(streams):
    return AplicadorOCR({**config.OCR_CONFIG, "inference_streams": streams, "memory_management": {}})


def test_two_streams_read_a_batch_as_one_does_and_keep_its_order():
    images = [generate_receipt(seed).image_bytes for seed in (4100, 4101)]
    batch = [images[0], b"not an image", images[1]]
    one, two = _engine(1), _engine(2)
    assert (one.streams, two.streams) == (1, 2)
    seen_threads = set()
    original = two._read_chunk

    def recording(name, chunk, closer=False):
        seen_threads.add(threading.current_thread().name)
        return original(name, chunk, closer)

    two._read_chunk = recording
    second = two.procesar_lote(batch)
    assert isinstance(second[1], ImageRejected)
    for a, b in zip([one.procesar_imagen(image) for image in images], [second[0], second[2]]):
        assert [w["texto"] for w in a["palabras_detectadas"]] == [w["texto"] for w in b["palabras_detectadas"]]
        assert a["image_sha256"] == b["image_sha256"]
    assert len(seen_threads) == 2 and all(name.startswith("ocr-stream") for name in seen_threads)


def test_streams_default_to_one_per_core_at_most_two():
    assert 1 <= inference_streams(0) <= 2
    assert inference_streams(3) == 3
