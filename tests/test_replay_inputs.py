"""What a replay reads from its files before the plugin sees a row: the table names found
without ``--measurement``, the lines as cut from the file, and the rows admitted."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from madcheck.engine import lineprotocol as lp
from madcheck.replay import inputs
from madcheck.replay.inputs import InputFile, InputOptions, tables_in
from madcheck.replay.stream import NO_TIME, Admission

# -- the table names -----------------------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(inputs, "CHUNK_CHARS", 256)


def _file(tmp_path: Path, text: str, name: str = "in.lp") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def _many(count: int, table: str = "cpu") -> str:
    return "".join(f"{table},host=h{i % 7} temp={i}.5 {1_700_000_000 + i}\n" for i in range(count))


def test_one_table_over_many_chunks_is_found(tmp_path, small_chunks):
    assert tables_in([_file(tmp_path, _many(500))], "auto") == {"cpu"}


@pytest.mark.parametrize(
    "last",
    ["mem v=1 1\n", "mem,host=a v=1 1", "  mem v=1 1\n", "cpu\\ x v=1 1\n", "cpux v=1 1\n"],
)
def test_a_second_table_in_the_last_line_is_still_found(tmp_path, small_chunks, last):
    found = tables_in([_file(tmp_path, _many(500) + last)], "auto")
    assert found is not None and "cpu" in found and len(found) == 2


def test_comments_blank_lines_and_crlf_name_no_table(tmp_path, small_chunks):
    text = "# cpu data\n\n" + _many(300).replace("\n", "\r\n") + "\n# end mem\n"
    assert tables_in([_file(tmp_path, text)], "auto") == {"cpu"}


def test_table_names_of_gzip_and_several_files(tmp_path, small_chunks):
    packed = tmp_path / "a.lp.gz"
    packed.write_bytes(gzip.compress(_many(400).encode()))
    other = _file(tmp_path, _many(50, "disk"), "b.lp")
    assert tables_in([packed, other], "auto") == {"cpu", "disk"}


def test_a_csv_file_names_no_table(tmp_path):
    assert tables_in([_file(tmp_path, "time,host,v\n", "x.csv")], "auto") is None


# -- the lines of a file -------------------------------------------------------------------------


def _rows(path: Path) -> list[tuple[int, dict[str, object]] | tuple[int, str]]:
    out: list[tuple[int, dict[str, object]] | tuple[int, str]] = []
    for block in InputFile(path).items(InputOptions("cpu", precision="s")):
        for item in block:
            if isinstance(item, lp.RowRun):
                out += [(item.first_line + i, row) for i, row in enumerate(item.rows)]
            elif isinstance(item, tuple):
                out.append((item[3], item[2]))
            elif isinstance(item, lp.Point):
                out.append((item.line_number, lp.to_engine_row(item)))
            else:
                out.append((item.line_number, item.error_message))
    return out


@pytest.mark.parametrize("line_end", ["\n", "\r\n", "\r"])
def test_line_ends_give_the_same_rows_and_line_numbers(tmp_path, monkeypatch, line_end):
    """``\\r\\n`` and a lone ``\\r`` end a line of a file, as they did when its lines were
    iterated; the rows do not depend on the pieces the file is read in."""
    monkeypatch.setattr(inputs, "PIECE_CHARS", 100)
    lines = ["# head", "", *(f"cpu,host=h{i % 3} v={i} {i + 1}" for i in range(300)), "cpu v=x 1"]
    expected = _rows(_file(tmp_path, "\n".join(lines) + "\n", "plain.lp"))
    assert len(expected) == 301 and expected[0][0] == 3 and expected[-1][0] == 303
    assert _rows(_file(tmp_path, line_end.join(lines) + line_end, "other.lp")) == expected


def test_a_byte_order_mark_is_not_part_of_the_first_table_name(tmp_path):
    path = tmp_path / "bom.lp"
    path.write_bytes("\ufeffcpu v=1 1\n".encode())
    assert _rows(path) == [(1, {"v": 1.0, "time": 10**9})]


# -- admission: a run of rows is admitted as its lines would be one by one -------------------------

_LINES = [
    "cpu,host=a temp=1.5,load=2 {t}",
    "cpu,host=b temp=2.5,load=3 {t}",
    "cpu,host=a,dc=eu temp=1 {t}",
    "cpu,host=a temp=1,extra=5i {t}",
    "cpu temp=1,host=2 {t}",  # host as a field: refused after it was a tag
    "cpu,temp=x load=1 {t}",  # temp as a tag
    "mem,host=a used=1 {t}",
    "cpu,host=a temp=1",  # no timestamp
    "cpu,host=a temp=oops {t}",
    "",
]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(st.sampled_from(_LINES), st.integers(1, 12)), max_size=25))
def test_admission_of_runs_is_admission_line_by_line(monkeypatch, picks):
    lines = []
    for template, repeat in picks:
        lines += [template.format(t=1_700_000_000 + len(lines) + i) for i in range(repeat)]
    text = "\n".join(lines) + "\n"

    def admitted(min_run: int) -> tuple[list[tuple[list[dict], list[str], list[str]]], list, str]:
        monkeypatch.setattr(lp, "MIN_RUN", min_run)
        monkeypatch.setattr(lp, "MAX_RUN", 16)
        monkeypatch.setattr(lp, "LINES_PER_BLOCK", 5)
        bad: list[tuple[str, int, str]] = []
        admission = Admission("cpu", lambda *report: bad.append(report))
        blocks = lp.iter_text_row_blocks([text], "s", default_time_ns=NO_TIME)
        out = [(a.rows, a.new_tags, a.new_fields) for a in admission.rows("f", blocks)]
        return out, bad, repr(admission.counts)

    by_runs, by_lines = admitted(2), admitted(10**9)  # runs never tried in the second
    assert _all_rows(by_runs) == _all_rows(by_lines)
    assert by_runs[1:] == by_lines[1:]  # the bad lines reported, the counts
    # new columns come with the same rows
    assert _firsts(by_runs) == _firsts(by_lines)


def _all_rows(result):
    return [row for rows, _, _ in result[0] for row in rows]


def _firsts(result):
    return [(rows[0], tags, fields) for rows, tags, fields in result[0] if tags or fields]
