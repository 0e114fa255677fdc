"""Names, metadata checks, image sniffing and durable file handling."""
import io
import os
import time

import pytest
from PIL import Image

from service.image_check import inspect_image
from storage import (
    Storage,
    UploadRejected,
    atomic_write_bytes,
    build_stored_name,
    display_name,
    is_plain_name,
    is_service_name,
    metadata_from_stored_name,
    validate_metadata,
)

SEED = {"numerosorteo": "A", "fechasorteo": "20250711", "idWhatsapp": "123456@lid", "nombre": "Juan", "horamin": "14-30"}


def png(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def storage(tmp_path):
    store = Storage({key: str(tmp_path / key) for key in
                     ("inbox", "processing", "processed", "errors", "results", "temp", "uploads")})
    store.ensure_directories()
    return store


def test_seed_name():
    # The seed's name, closed by the upload's id: unique without looking for a free name.
    assert build_stored_name(SEED, "png", 1) == "20250711-A--123456@lid_Juan_14-30~1.png"
    assert build_stored_name(SEED, "jpg", 42) == "20250711-A--123456@lid_Juan_14-30~42.jpg"
    assert is_service_name("20250711-A--123456@lid_Juan_14-30~42.jpg")
    # What an operator drops into the inbox is not the service's, whatever the seed's pattern says.
    assert not any(map(is_service_name, ["20250711-A--123456@lid_Juan_14-30.png", "IMG_0001.jpg", "x_2.png"]))


def test_names_are_safe_whatever_the_metadata():
    name = build_stored_name({"nombre": "Ñandú Gómez", "idWhatsapp": "58412@s.whatsapp.net"}, "png", 7)
    assert name == "---58412@s.whatsapp.net_Nandu_Gomez_~7.png" and is_plain_name(name)
    long_name = build_stored_name({"nombre": "x" * 500}, "png", 2**31 - 1)
    assert len(long_name) <= 204 and long_name.endswith("~2147483647.png")


def test_metadata_is_validated_and_cleaned():
    assert validate_metadata(SEED, 120) == SEED
    assert validate_metadata({}, 120) == {key: "" for key in SEED}
    cleaned = validate_metadata({**SEED, "nombre": "  María  José\t'Peña' "}, 120)
    assert cleaned["nombre"] == "María José Peña"
    for field, value in [("fechasorteo", "20240230"), ("horamin", "24-00"), ("nombre", "<b>x</b>"),
                         ("idWhatsapp", "a b"), ("numerosorteo", "ABCDEFGHIJK")]:
        with pytest.raises(UploadRejected) as caught:
            validate_metadata({**SEED, field: value}, 120)
        assert caught.value.field == field and caught.value.status == 400


def test_leap_day_is_a_real_date():
    assert validate_metadata({"fechasorteo": "20240229"}, 120)["fechasorteo"] == "20240229"


def test_display_name_keeps_only_the_last_part():
    assert display_name("../../etc/passwd.png") == "passwd.png"
    assert display_name("C:\\Users\\x\\recibo.png") == "recibo.png"
    assert display_name("<img src=x>.png") == "img src=x.png"
    assert display_name("") == "unnamed"


@pytest.mark.parametrize("name", ["", ".", "..", "../x.png", "a/b.png", "a\\b.png", ".hidden", "x\x00.png", "a" * 256])
def test_plain_names(name):
    assert not is_plain_name(name)


def test_metadata_from_the_seed_pattern():
    assert metadata_from_stored_name("20250711-A--123456@lid_Juan_14-30.png") == SEED
    assert metadata_from_stored_name("20250711-A--123456@lid_Juan_14-30~12.png") == SEED
    assert metadata_from_stored_name("IMG_0001.jpg")["fechasorteo"] == ""


def test_inspect_image_sniffs_the_real_format():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20)).save(buffer, "JPEG")
    info = inspect_image(buffer.getvalue())
    assert (info.image_format, info.extension, info.width) == ("JPEG", "jpg", 20)
    assert inspect_image(png()).extension == "png"


@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "unsupported_format"),
    (b"<html><body>hola</body></html>", "unsupported_format"),
    (b"GIF89a" + b"\0" * 3, "unsupported_format"),
])
def test_inspect_image_refuses_non_images(data, code):
    with pytest.raises(UploadRejected) as caught:
        inspect_image(data)
    assert caught.value.code == code


def test_inspect_image_refuses_corrupt_png():
    data = bytearray(png((200, 200)))
    data[60:80] = b"\xff" * 20  # damage a chunk: its CRC no longer matches
    with pytest.raises(UploadRejected) as caught:
        inspect_image(bytes(data))
    assert caught.value.code == "invalid_image"


def test_stage_hashes_and_bounds_size(storage):
    staged = storage.stage(io.BytesIO(b"abc" * 1000), max_bytes=10_000)
    assert staged.size == 3000 and staged.path.read_bytes() == b"abc" * 1000
    assert staged.path.name.startswith(".upload-")
    with pytest.raises(UploadRejected) as caught:
        storage.stage(io.BytesIO(b"x" * 20_000), max_bytes=10_000)
    assert caught.value.status == 413
    assert [p.name for p in storage.dirs["inbox"].iterdir()] == [staged.path.name]


def test_publish_never_overwrites_and_hides_uncommitted_files(storage):
    first = storage.stage(io.BytesIO(b"one"), 100)
    target = storage.publish(first, "r.png")
    # Linked but not committed yet: the inbox scanner must not pick it up.
    assert storage.inbox_candidates(0, time.time() + 10) == []
    storage.finish_publish(first)
    assert storage.inbox_candidates(0, time.time() + 10) == [target]
    second = storage.stage(io.BytesIO(b"two"), 100)
    with pytest.raises(FileExistsError):
        storage.publish(second, "r.png")
    assert target.read_bytes() == b"one"
    storage.unpublish(second, "other.png")
    assert not second.path.exists()


def test_inbox_candidates_wait_for_min_age(storage):
    (storage.dirs["inbox"] / "fresh.png").write_bytes(b"x")
    assert storage.inbox_candidates(60, time.time()) == []
    assert len(storage.inbox_candidates(0, time.time() + 1)) == 1


def test_move_is_idempotent_and_locates_files_anywhere(storage):
    (storage.dirs["inbox"] / "a.png").write_bytes(b"x")
    assert storage.move("a.png", "processing") == storage.dirs["processing"] / "a.png"
    assert storage.move("a.png", "processing") == storage.dirs["processing"] / "a.png"
    assert storage.move("a.png", "processed").read_bytes() == b"x"
    assert storage.locate("a.png") == storage.dirs["processed"] / "a.png"
    assert storage.move("missing.png", "processed") is None
    with pytest.raises(ValueError):
        storage.move("../a.png", "processed")


def test_atomic_write_replaces_whole_file(tmp_path):
    path = tmp_path / "r.json"
    atomic_write_bytes(path, b"old")
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new" and os.listdir(tmp_path) == ["r.json"]


def test_remove_upload_files_reports_bytes(storage):
    (storage.dirs["processed"] / "a.png").write_bytes(b"12345")
    (storage.dirs["results"] / "a.png.json").write_bytes(b"{}")
    assert storage.remove_upload_files("a.png") == 7
    assert storage.remove_upload_files("a.png") == 0
