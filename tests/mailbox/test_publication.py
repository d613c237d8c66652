"""Publication: the redaction of personal data, the secretary's review, publishing and unpublishing, and the
promise that a letter the writer kept private never appears in public."""

import pytest
from django.db import IntegrityError, transaction

from governance.errors import DomainError, NotAllowed
from governance.redaction import MASK, redact
from mailbox import services
from mailbox.models import Letter
from mailbox.selectors import public_letters

# Chinese text as residents write it: (text, what must disappear, what must stay).
REDACTION_CASES = [
    ("我的电话13812345678，请回电", ["13812345678"], ["请回电"]),
    ("手机 138 1234 5678", ["138 1234 5678"], ["手机"]),
    ("联系+86 139-1234-5678", ["139-1234-5678"], ["联系"]),
    ("座机0838-2345678转801", ["0838-2345678"], ["座机"]),
    ("（028）87654321", ["87654321"], []),
    ("身份证510106199001011234", ["510106199001011234"], ["身份证"]),
    ("身份证号51010619900101123X已核对", ["51010619900101123X"], ["已核对"]),
    ("邮箱 zhang.san@qq.com 或 lisi@163.com", ["zhang.san@qq.com", "lisi@163.com"], ["邮箱"]),
    ("我住3栋2单元401室，漏水", ["3栋2单元401室"], ["漏水"]),
    ("5号楼1202的住户半夜装修", ["5号楼1202"], ["的住户半夜装修"]),
    ("家住2-3-401", ["2-3-401"], ["家住"]),
    ("A座1203室门口", ["A座1203室"], ["门口"]),
    ("12幢3-2楼的邻居", ["12幢3-2楼"], ["的邻居"]),
    ("长江东路123号门前", ["123号"], ["长江东路", "门前"]),
    ("我家在一单元二楼", ["一单元二楼"], ["我家在"]),
    # What must stay: dates, amounts, counts, grid names, a plain floor.
    ("3月5号下午在小区门口", [], ["3月5号下午"]),
    ("2026-11-22 反映过一次", [], ["2026-11-22"]),
    ("物业费涨了300元", [], ["300元"]),
    ("一共5个人受伤", [], ["5个人"]),
    ("第1网格的网格员", [], ["第1网格"]),
    ("3楼漏水", [], ["3楼漏水"]),
]


@pytest.mark.parametrize(("text", "gone", "kept"), REDACTION_CASES)
def test_redaction_removes_personal_data_from_chinese_text(text, gone, kept):
    redacted, hits = redact(text)
    for part in gone:
        assert part not in redacted, (text, redacted)
    for part in kept:
        assert part in redacted, (text, redacted)
    assert (MASK in redacted) == bool(gone)
    assert len(hits) >= len(gone)


def test_the_writers_own_name_is_redacted_too():
    redacted, hits = redact("我是张三明，张三明的儿子也住这里", names=["张三明"])
    assert "张三明" not in redacted and [h.kind for h in hits] == ["name"]


def test_replied_letters_the_writer_allowed_are_published_redacted(make_letter, resident_record):
    letter = make_letter("replied", allow_publication=True)
    assert letter.published and letter.published_at
    assert "13812345678" not in letter.public_body and MASK in letter.public_body
    assert letter.public_reply == "已安排物业三天内修好。"
    assert public_letters().filter(pk=letter.pk).exists()


def test_a_private_letter_is_never_published(make_letter, secretary):
    letter = make_letter("replied", allow_publication=False)
    assert not letter.published and not public_letters().filter(pk=letter.pk).exists()
    with pytest.raises(DomainError) as refused:
        services.letter_publish(letter=letter, by=secretary)
    assert "未同意公开" in str(refused.value.message)
    # Not even by writing the row directly: the database refuses a published private letter.
    with pytest.raises(IntegrityError), transaction.atomic():
        Letter.objects.filter(pk=letter.pk).update(published=True)
    assert not public_letters().exists()


def test_the_secretary_reviews_and_edits_the_public_copy_which_is_redacted_again(make_letter, secretary):
    letter = make_letter("accepted", allow_publication=True)
    preview = services.redaction_preview(letter)
    assert {r["text"] for r in preview["removed"]} >= {"13812345678"}
    assert preview["writer"] == "张*明"
    letter = services.letter_reply(
        letter=letter,
        by=secretary,
        text="已安排物业修好，有问题打13900001111",
        public_body="居民反映楼道灯坏了（已核实）。联系电话13812345678",
    )
    assert letter.public_body.startswith("居民反映楼道灯坏了（已核实）") and "13812345678" not in letter.public_body
    assert "13900001111" not in letter.public_reply  # the reply is redacted too


def test_unpublish_and_publish_again_by_the_secretary_only(make_letter, secretary, community_staff, resident):
    letter = make_letter("replied", allow_publication=True)
    for user in (community_staff, resident):
        with pytest.raises(NotAllowed):
            services.letter_unpublish(letter=letter, by=user)
    letter = services.letter_unpublish(letter=letter, by=secretary, note="涉及未成年人")
    assert not letter.published and not public_letters().exists()
    with pytest.raises(DomainError):
        services.letter_unpublish(letter=letter, by=secretary)
    letter = services.letter_publish(letter=letter, by=secretary, public_body="居民反映楼道照明问题。")
    assert letter.published and letter.public_body == "居民反映楼道照明问题。"


def test_a_letter_is_published_only_once_it_is_answered(make_letter, secretary):
    with pytest.raises(DomainError) as refused:
        services.letter_publish(letter=make_letter("accepted", allow_publication=True), by=secretary)
    assert "答复" in str(refused.value.message)


def test_the_writer_withdraws_consent_and_the_letter_leaves_the_public_page(make_letter, resident, secretary):
    letter = make_letter("closed", allow_publication=True)
    assert public_letters().filter(pk=letter.pk).exists()
    letter = services.letter_make_private(letter=letter, by=resident)
    assert not letter.allow_publication and not letter.published
    assert not public_letters().exists()
    with pytest.raises(DomainError):
        services.letter_publish(letter=letter, by=secretary)


def test_a_follow_up_answer_is_published_with_the_letter(make_letter, secretary):
    letter = make_letter("follow_up", allow_publication=True)
    letter = services.letter_reply(letter=letter, by=secretary, text="周三修好，联系人13900001111")
    assert letter.public_follow_up == "三天了还没修？"
    assert letter.public_follow_up_reply.startswith("周三修好") and "13900001111" not in letter.public_follow_up_reply
