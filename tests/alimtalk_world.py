"""An informational AlimTalk campaign falling back to SMS in the messaging world (tests/messaging_world.py):
the registry, template, campaign and policy documents, people subscribed to AlimTalk on their phone,
and NhnAlimTalk over real HTTP to the fake NHN API."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from devstack.fakes.nhn_alimtalk import NhnAlimTalkFake
from shared.adapters.folder_blobs import FolderBlobs
from shared.adapters.nhn_alimtalk import NhnAlimTalk
from shared.consent.ledger import subscription_row
from shared.messaging.alimtalk import ALIMTALK_TEMPLATES
from shared.messaging.campaigns import parse_policy, validate_campaign
from shared.messaging.ledger import CLAIMS
from shared.services.deliver import BatchReport, deliver_batch
from shared.services.send_messages import plan_run
from tests.builders import SALT
from tests.fakes import FakeSecrets
from tests.messaging_world import NOON, SITE, T0, Person, World

APP, SECRET, SENDER = "app-1", "secret-1", "k" * 40
CODE = "ORDER_READY"
CONTENT = "#{고객명}님, 주문하신 상품이 준비되었습니다. 회원번호 #{member_id}"
CAMPAIGN = "order-ready"
LATER = NOON + timedelta(minutes=1)
TEMPLATE: dict[str, Any] = {
    "alimtalk": {"template_code": CODE, "parameters": {"고객명": "{{ given_name or '고객' }}"}},
    "sms": {"text": "{{ given_name or '고객' }}님, 주문하신 상품이 준비되었습니다."},
}


class KakaoWorld(World):
    """The messaging world with an informational AlimTalk campaign falling back to SMS."""

    kakao: NhnAlimTalk

    def setup(self, fake: NhnAlimTalkFake, timeout: float = 1.0) -> None:
        secrets = FakeSecrets(values={"alimtalk-api-key": SECRET})
        self.kakao = NhnAlimTalk(APP, SENDER, secrets, api_url=fake.url, timeout=timeout)
        self.documents.set(ALIMTALK_TEMPLATES, CODE, {"status": "APR", "content": CONTENT})
        self.documents.set("message_templates", "order", TEMPLATE)
        doc = {"segment_id": "winback", "kind": "informational", "channels": ["alimtalk", "sms"],
               "template_id": "order", "enabled": True}  # fmt: skip
        self.documents.set("campaigns", CAMPAIGN, doc)
        self.documents.set("messaging", "policy", {"throttles": {"nhn_alimtalk": 10000, "twilio": 10000}})

    def kakao_person(self, name: str, *, alimtalk: bool = True, phone: str | None = "", **options: Any) -> Person:
        person = self.person(name, **options, phone=phone)
        if alimtalk and person.phone:
            self.queue("raw.subscription", subscription_row(SITE, "alimtalk", person.phone, True, T0, T0, "form"))
        return person

    def plan_kakao(self, batch_size: int = 500) -> None:
        self.commit()
        policy = parse_policy(self.documents.get("messaging", "policy"))
        campaign, template = validate_campaign(
            CAMPAIGN, self.documents.get("campaigns", CAMPAIGN), segment_exists=lambda s: True,
            template_doc=lambda t: self.documents.get("message_templates", t), policy=policy,
            available_channels={"alimtalk", "sms"}, now=NOON,
            alimtalk_templates=lambda code: self.documents.get(ALIMTALK_TEMPLATES, code),
        )  # fmt: skip
        plan_run(self.warehouse, self.documents, self.bus, campaign, template, policy, NOON, "run-1", salt=SALT,
                 links=self.links(), outbox=FolderBlobs(self.tmp / "outbox"), batch_size=batch_size)  # fmt: skip

    def deliver(self, data: bytes, at: Any = LATER) -> BatchReport:
        return deliver_batch(self.ports(channels={"alimtalk": self.kakao, "sms": self.sms}), data, at)

    def delivery_id(self, person: Person, channel: str) -> str:
        [row] = [
            r for r in self.rows("audiences.deliveries")
            if r["campaign_id"] == CAMPAIGN and r["customer_id"] == person.customer_id and r["channel"] == channel
        ]  # fmt: skip
        return str(row["delivery_id"])

    def claims(self) -> dict[str, dict[str, Any]]:
        return dict(self.documents.list(CLAIMS))
