"""deploy/package_check.py refuses a Lambda package that would fail at import on python3.13/arm64.

Fabricated ELF headers and zips: no Chalice, no pip, no network.
"""

from __future__ import annotations

import io
import struct
import zipfile

import pytest

from deploy import package_check
from deploy.package_check import check_package, check_zip, elf_problem, extension_problem, missing_dependencies

EM_X86_64, EM_AARCH64 = 0x3E, 0xB7

# What Chalice 1.34 prints (chalice.constants.MISSING_DEPENDENCIES_TEMPLATE) when it finds no Lambda wheel.
CHALICE_WARNING = """Creating deployment package.

Could not install dependencies:
pydantic-core==2.27.2
You will have to build these yourself and vendor them in
the chalice vendor folder.

Your deployment will continue but may not work correctly
if missing dependencies are not present. For more information:
http://aws.github.io/chalice/topics/packaging.html
"""


def elf(machine: int, elf_class: int = 2, byteorder: str = "little") -> bytes:
    """The first 64 bytes of a shared object: e_ident, e_type = ET_DYN, e_machine."""
    ident = b"\x7fELF" + bytes([elf_class, 1 if byteorder == "little" else 2, 1]) + bytes(9)
    fmt = "<HH" if byteorder == "little" else ">HH"
    return (ident + struct.pack(fmt, 3, machine)).ljust(64, b"\0")


def make_zip(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("app.py", b"from chalice import Chalice\n")
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


X86_64_CP313 = ("markupsafe/_speedups.cpython-313-x86_64-linux-gnu.so", elf(EM_X86_64))
AARCH64_CP311 = ("markupsafe/_speedups.cpython-311-aarch64-linux-gnu.so", elf(EM_AARCH64))
AARCH64_CP313 = ("markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so", elf(EM_AARCH64))
AARCH64_ABI3 = ("cryptography/hazmat/bindings/_rust.abi3.so", elf(EM_AARCH64))


@pytest.mark.parametrize("name, head", [AARCH64_CP313, AARCH64_ABI3], ids=["aarch64-cp313", "aarch64-abi3"])
def test_an_aarch64_extension_for_cp313_or_abi3_is_accepted(name, head):
    assert check_zip(make_zip({name: head})) == []


def test_an_x86_64_extension_is_refused_whatever_its_name_says():
    assert "x86_64" in elf_problem(elf(EM_X86_64))
    mislabeled = ("markupsafe/_speedups.cpython-313-aarch64-linux-gnu.so", elf(EM_X86_64))
    for name, head in (X86_64_CP313, mislabeled):
        problems = check_zip(make_zip({name: head}))
        assert len(problems) == 1 and name in problems[0] and "x86_64" in problems[0], problems


def test_an_aarch64_extension_for_cp311_is_refused():
    problems = check_zip(make_zip(dict([AARCH64_CP311])))
    assert len(problems) == 1
    assert "cpython-311-aarch64-linux-gnu" in problems[0] and "expected cpython-313-aarch64-linux-gnu" in problems[0]


def test_an_untagged_extension_a_32_bit_or_big_endian_elf_and_a_non_elf_are_refused():
    assert extension_problem("pkg/_ext.so") is not None
    assert "64-bit" in elf_problem(elf(EM_AARCH64, elf_class=1))
    assert elf_problem(elf(EM_AARCH64, byteorder="big")) is None  # e_machine read in the file's byte order
    assert "x86_64" in elf_problem(elf(EM_X86_64, byteorder="big"))
    assert elf_problem(b"#!/bin/sh\n") == "not an ELF file"
    assert len(check_zip(make_zip({"pkg/_ext.so": elf(EM_AARCH64), "pkg/_x.abi3.so": b"text"}))) == 2


def test_a_bundled_library_needs_the_right_elf_but_no_python_tag():
    # auditwheel puts the libraries a wheel links to in `<name>.libs/`: aarch64 ELF, no cpython tag.
    assert check_zip(make_zip({"numpy.libs/libgfortran-abc.so.5.0.0": elf(EM_AARCH64)})) == []
    problems = check_zip(make_zip({"numpy.libs/libgfortran-abc.so.5.0.0": elf(EM_X86_64)}))
    assert len(problems) == 1 and "x86_64" in problems[0]


def test_the_x86_64_architecture_wants_x86_64_elves():
    name = "markupsafe/_speedups.cpython-313-x86_64-linux-gnu.so"
    assert check_zip(make_zip({name: elf(EM_X86_64)}), architecture="x86_64") == []
    assert check_zip(make_zip(dict([AARCH64_CP313])), architecture="x86_64") != []


def test_chalice_s_could_not_install_warning_is_refused():
    assert missing_dependencies(CHALICE_WARNING) == ["pydantic-core==2.27.2"]
    problems = check_zip(make_zip(dict([AARCH64_CP313])), CHALICE_WARNING)
    assert problems == ["Chalice could not install pydantic-core==2.27.2: the function would fail at import"]
    assert missing_dependencies("Creating deployment package.\nReusing existing deployment package.\n") == []


@pytest.mark.parametrize("tag, fit", [
    ("py3-none-any", True), ("py2.py3-none-any", True),
    ("cp313-cp313-manylinux_2_17_aarch64.manylinux2014_aarch64", True),
    ("cp39-abi3-manylinux_2_28_aarch64", True),
    ("cp311-cp311-manylinux_2_17_aarch64", False),
    ("cp313-cp313-manylinux_2_17_x86_64", False),
    ("cp313-cp313-macosx_11_0_arm64", False),
    ("cp311-cp311-linux_x86_64", False),
])
def test_a_wheel_tagged_for_another_python_or_platform_is_refused(tag, fit):
    wheel = f"Wheel-Version: 1.0\nRoot-Is-Purelib: false\nTag: {tag}\n".encode()
    assert (check_zip(make_zip({"pkg-1.0.dist-info/WHEEL": wheel})) == []) is fit


def test_check_package_reads_the_output_folder_and_the_cli_says_why(tmp_path, capsys):
    (tmp_path / "deployment.zip").write_bytes(make_zip(dict([AARCH64_CP313])))
    assert check_package(tmp_path) == []
    assert package_check.main([str(tmp_path)]) == 0
    assert "fit for python3.13 on arm64" in capsys.readouterr().out

    (tmp_path / "deployment.zip").write_bytes(make_zip(dict([AARCH64_CP311, X86_64_CP313])))
    log = tmp_path / "chalice.log"
    log.write_text(CHALICE_WARNING)
    assert package_check.main([str(tmp_path), "--chalice-output", str(log)]) == 1
    err = capsys.readouterr().err
    assert "not fit for python3.13 on arm64" in err
    assert "pydantic-core" in err and "cpython-311" in err and "x86_64" in err

    (tmp_path / "empty").mkdir()  # chalice package failed half-way: no zip is no pass
    expected = f"{tmp_path / 'empty' / 'deployment.zip'}: no deployment package there"
    assert check_package(tmp_path / "empty") == [expected]
    assert package_check.main([str(tmp_path / "nothing")]) == 1


def test_require_fit_raises_with_every_problem(tmp_path):
    path = tmp_path / "deployment.zip"
    path.write_bytes(make_zip(dict([AARCH64_CP311])))
    with pytest.raises(package_check.PackageCheckError, match="cpython-311"):
        package_check.require_fit(path)


def test_the_cli_has_help_and_takes_the_stage_s_runtime(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        package_check.main(["--help"])
    assert done.value.code == 0
    assert "build/package-S" in capsys.readouterr().out
    (tmp_path / "deployment.zip").write_bytes(make_zip(dict([AARCH64_CP313])))
    assert package_check.main([str(tmp_path), "--stage", "prod"]) == 0
    assert package_check.main([str(tmp_path), "--runtime", "python3.11"]) == 1
    with pytest.raises(SystemExit) as done:
        package_check.main([str(tmp_path), "--stage", "nope"])
    assert done.value.code == 2
