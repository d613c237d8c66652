"""`python manage.py create_open311_key NAME`: a new Open311 API key for another system (the 12345 hotline's
bridge, a reporting app). The key is printed on the last line, once: only its SHA-256 is kept. Revoke it in the
admin (接口密钥)."""

from django.core.management.base import BaseCommand

from governance import services


class Command(BaseCommand):
    help = "Create an Open311 API key; the key is printed on the last line (only its hash is stored)."

    def add_arguments(self, parser):
        parser.add_argument("name", help="who uses the key, e.g. 12345热线")

    def handle(self, *args, name, **options):
        key, raw = services.api_key_create(name=name)
        self.stdout.write(f"已创建接口密钥「{key.name}」（前缀 {key.prefix}），只显示这一次，请妥善保存：")
        self.stdout.write(raw)
