"""Translations: the French catalogue loads and shows on the forms; the template and the
catalogue's registered terms stay complete."""

import os
import socket
from unittest.mock import patch

import polib

from odoo.modules.module import get_module_path
from odoo.tests import tagged
from odoo.tools.translate import (
    JAVASCRIPT_TRANSLATION_COMMENT,
    PYTHON_TRANSLATION_COMMENT,
    TranslationModuleReader,
)

from ..iot_pki import codes, https_check
from ..models import core_i18n, iot_box
from .common import IotHttpsCase

MODULE = "iot_https"
I18N_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "i18n")


def _msgids(path):
    return {entry.msgid for entry in polib.pofile(path) if entry.msgid and not entry.obsolete}


class _SourceTreeReader(TranslationModuleReader):
    """Odoo's export of the module's terms, scanning only the addon's own sources: not the
    hidden folders of a development checkout (virtual environments, build output)."""

    def _export_translatable_resources(self):
        module_path = get_module_path(MODULE)
        addons_path = os.path.dirname(module_path)
        for root, dirs, files in os.walk(module_path, followlinks=True):
            dirs[:] = [name for name in dirs if not name.startswith(".") and name != "__pycache__"]
            for fname in files:
                if fname.endswith(".py"):
                    method, comment, keywords = "python", PYTHON_TRANSLATION_COMMENT, {"_": None, "_lt": None}
                elif fname.endswith(".js") and "/static/src" in root:
                    method, comment, keywords = "javascript", JAVASCRIPT_TRANSLATION_COMMENT, {"_t": None, "_lt": None}
                else:
                    continue
                self._babel_extract_terms(
                    fname, addons_path, root, method, extra_comments=[comment], extract_keywords=keywords
                )


@tagged("post_install", "-at_install")
class TestI18n(IotHttpsCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang("fr_FR")
        cls.env["ir.module.module"]._load_module_terms([MODULE], ["fr_FR"], overwrite=True)
        cls.user_fr = (
            cls.env["res.users"]
            .with_context(no_reset_password=True)
            .create(
                {
                    "name": "IoT user (fr)",
                    "login": "iot-user-fr",
                    "lang": "fr_FR",
                    "groups_id": [(6, 0, [cls.env.ref("iot_https.iot_https_group_user").id])],
                }
            )
        )

    def test_box_form_in_french(self):
        boxes = self.env["iot.box"].with_user(self.user_fr).with_context(lang="fr_FR")
        arch = boxes.get_views([(False, "form")])["views"]["form"]["arch"]
        self.assertIn('string="Vérifier HTTPS"', arch)
        self.assertIn("<strong>Certificat HTTPS</strong>", arch)
        self.assertIn("Aucun certificat HTTPS connu pour ce boîtier.", arch)
        self.assertNotIn("No HTTPS certificate known", arch)
        # Download logs is shown in debug mode only (base.group_no_one): read it from the view.
        view = self.env.ref("iot_https.iot_box_view_form").with_context(lang="fr_FR")
        self.assertIn('string="Télécharger les journaux"', view.arch)

    def test_field_and_selection_labels_in_french(self):
        box_fields = self.env["iot.box"].with_context(lang="fr_FR").fields_get(["ip", "https_state"])
        self.assertEqual(box_fields["ip"]["string"], "Adresse")
        self.assertIn(("error", "Ne fonctionne pas"), box_fields["https_state"]["selection"])
        subscription_fields = self.env["iot.subscription"].with_context(lang="fr_FR").fields_get(["state"])
        self.assertIn(("in_progress", "En cours"), subscription_fields["state"]["selection"])

    def test_eligibility_message_in_french(self):
        database = self._create_database("db-uuid-i18n-no-subscription")
        database_fr = database.with_context(lang="fr_FR")
        self.assertEqual(database_fr.eligibility_message, "La base de données n'a pas d'abonnement.")
        self.assertEqual(database_fr.eligibility_fix, "Liez la base de données à son abonnement.")
        self.assertEqual(
            self.database.with_context(lang="fr_FR").eligibility_message,
            "Éligible : ses boîtiers reçoivent des certificats HTTPS.",
        )
        # The English source stays the catalogue's text.
        self.assertEqual(
            database.with_context(lang="en_US").eligibility_message, codes.REFUSALS[codes.NO_SUBSCRIPTION].meaning
        )

    def test_catalogue_terms_match_the_catalogue(self):
        catalogue = {
            text for code in (*codes.BOX_ERRORS.values(), *codes.REFUSALS.values()) for text in (code.meaning, code.fix)
        }
        registered = [term._source for term in core_i18n.CATALOGUE_TERMS]
        self.assertEqual(len(registered), len(set(registered)), "a catalogue term is registered twice")
        self.assertEqual(set(registered), catalogue)

    def test_https_check_terms_match_the_core(self):
        core = {*https_check.MESSAGES.values(), *https_check.FIXES.values(), *https_check.PHRASES}
        registered = [term._source for term in core_i18n.HTTPS_CHECK_TERMS]
        self.assertEqual(len(registered), len(set(registered)), "an HTTPS check term is registered twice")
        self.assertEqual(set(registered), core | {iot_box.SERVER_RESOLVER})

    def test_check_https_outcome_in_french(self):
        """The stored outcome is shown in the reader's language, its facts (the box's name) and
        its words (which resolver answered) in place; the English stays the core's text."""
        host = f"10-0-0-5.label.{self.zone}"
        box = self.env["iot.box"].create({"name": "Counter", "identifier": "b8:27:eb:00:00:42", "ip": host})
        real = socket.getaddrinfo

        def getaddrinfo(name, *args, **kwargs):  # the router that blocks private answers, at the edge
            if name == host:
                raise socket.gaierror(socket.EAI_NONAME, "fake resolver")
            return real(name, *args, **kwargs)

        with patch.object(socket, "getaddrinfo", getaddrinfo):
            box.with_user(self.user_fr).with_context(lang="fr_FR").action_check_https()
        self.assertEqual((box.https_state, box.https_code), ("error", https_check.DNS_NXDOMAIN))
        box_fr = box.with_user(self.user_fr).with_context(lang="fr_FR")
        self.assertEqual(
            box_fr.https_message,
            f"{host} ne se résout pas (NXDOMAIN selon le résolveur du serveur Odoo) : le routeur ou le serveur DNS "
            "bloque les noms publics qui se résolvent en adresses privées comme 10.0.0.5 (protection contre le DNS "
            "rebinding) ; les navigateurs affichent DNS_PROBE_FINISHED_NXDOMAIN et la page d'accueil s'ouvre par "
            "l'adresse IP mais pas par le nom",
        )
        self.assertTrue(box_fr.https_fix.startswith("si le routeur permet un DNS manuel, réglez-le sur Google DNS"))
        expected = https_check.dns_outcome(host, "nxdomain", None, where=iot_box.SERVER_RESOLVER)
        box_en = box.with_context(lang="en_US")
        self.assertEqual((box_en.https_message, box_en.https_fix), (expected.message, expected.fix))
        self.assertIn("NXDOMAIN from the Odoo server's resolver", box_en.https_message)

    def test_box_error_meaning_in_french(self):
        """The box form says what the box's error code means, in the reader's language."""
        refused = self._create_database("db-uuid-i18n-no-line", self._create_subscription("M-I18N", iot_line=False))
        box = self.env["iot.box"].create({"name": "Kiosk", "identifier": "b8:27:eb:00:00:43"})
        box.database_id = refused
        requests_ = self.env["iot.request"].sudo()
        requests_.create({"database_id": refused.id, "decision": codes.NO_IOT_BOX_LINE})
        box_fr = box.with_user(self.user_fr).with_context(lang="fr_FR")
        self.assertEqual(box_fr.last_error_code, codes.LOAD_REQUEST_NO_RESULT)
        french = "L'émetteur a répondu mais a refusé le certificat"
        self.assertTrue(box_fr.last_error_meaning.startswith(french), box_fr.last_error_meaning)
        self.assertEqual(
            box.with_context(lang="en_US").last_error_meaning, codes.BOX_ERRORS[codes.LOAD_REQUEST_NO_RESULT].meaning
        )
        # A rate-limited request: the box shows the status after the code; the meaning is the code's.
        requests_.create({"database_id": refused.id, "decision": "rate_limited"})
        box.invalidate_recordset()
        self.assertEqual(box_fr.last_error_code, f"{codes.LOAD_REQUEST_STATUS} 429")
        meaning = box_fr.last_error_meaning
        self.assertTrue(meaning.startswith("Le boîtier a joint l'émetteur"), meaning)

    def test_french_catalogue_is_complete(self):
        pot_ids = _msgids(os.path.join(I18N_DIR, f"{MODULE}.pot"))
        french = polib.pofile(os.path.join(I18N_DIR, "fr.po"))
        self.assertEqual(french.metadata.get("Language"), "fr")
        self.assertEqual({entry.msgid for entry in french.translated_entries()}, pot_ids)
        self.assertFalse(french.fuzzy_entries())

    def test_pot_is_up_to_date(self):
        exported = {row[4] for row in _SourceTreeReader(self.env.cr, modules=[MODULE]) if row[4]}
        # SQL constraint messages are exported from their ir.model.constraint rows, which
        # Odoo 17 drops on an in-place update (-u) of the module: take them from the models.
        exported |= {
            message
            for name in self.env
            if name.startswith("iot.")
            for _key, _sql, message in self.env[name]._sql_constraints
        }
        pot_ids = _msgids(os.path.join(I18N_DIR, f"{MODULE}.pot"))
        self.assertEqual(exported - pot_ids, set(), "terms missing from the .pot: export it again")
        self.assertEqual(pot_ids - exported, set(), "terms no longer in the module: export the .pot again")
