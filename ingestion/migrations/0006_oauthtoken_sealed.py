"""OAuth2 access tokens are stored sealed (configuration.secrets_at_rest) instead of in clear.

The table is only a cache: the clear-text tokens are deleted (workers fetch new ones) and the column
is renamed so nothing reads a sealed value as a token.
"""
from django.db import migrations


def drop_cached_tokens(apps, schema_editor):
    apps.get_model("ingestion", "OAuthToken").objects.all().delete()


class Migration(migrations.Migration):

    dependencies = [
        ('ingestion', '0005_alpha_operations'),
    ]

    operations = [
        migrations.RunPython(drop_cached_tokens, migrations.RunPython.noop, elidable=True),
        migrations.RenameField(model_name='oauthtoken', old_name='access_token', new_name='sealed_token'),
    ]
