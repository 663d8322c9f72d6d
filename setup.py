from pathlib import Path

from setuptools import find_namespace_packages, setup

long_description = Path("README.md").read_text(encoding="utf-8") if Path("README.md").exists() else ""

setup(
    name="esign.plone",
    version="1.0.0.dev0",
    description="Electronic signing for Plone: PAdES signatures with one-time keys from the site's own CA, "
    "BankID and SITHS identities, a signing workflow inside the CMS.",
    long_description=long_description,
    long_description_content_type="text/markdown",
    classifiers=[
        "Environment :: Web Environment",
        "Framework :: Plone",
        "Framework :: Plone :: 6.2",
        "Framework :: Plone :: Addon",
        "Programming Language :: Python :: 3.11",
        "License :: OSI Approved :: GNU General Public License v2 (GPLv2)",
    ],
    license="GPL-2.0-only",
    packages=find_namespace_packages("src", include=["esign.*"]),
    package_dir={"": "src"},
    include_package_data=True,
    zip_safe=False,
    python_requires=">=3.11",
    install_requires=[
        "Products.CMFPlone>=6.2",
        "plone.api",
        "plone.restapi",
        "plone.app.dexterity",
        "plone.app.registry",
        "plone.locking",
        "collective.z3cform.datagridfield",
        # opentype: visible stamps with an embedded font; pkcs11: CA/TSA keys in an HSM;
        # etsi: ETSI TS 119 102-2 validation reports.
        "pyhanko[opentype,pkcs11,etsi]>=0.38",
        "pyhanko-certvalidator>=0.33",
        "asn1crypto",
        "cryptography",
        "zope.interface",
        "requests",
        "PyJWT[crypto]",
        "segno",
    ],
    extras_require={
        "test": [
            "plone.app.testing",
            "plone.app.contenttypes",
            "pytest",
            "pytest-plone",
            "reportlab",
            "fpdf2",
            "endesive",
            "pypdf",
            "ruff",
            "playwright",
            "hypothesis",
            "freezegun",
        ],
        # The project's own protocol-true servers (BankID RP v6, OIDC, SMTP) for
        # `make start` and the tests.
        "servers": [
            "aiosmtpd",
        ],
        # Cluster mode (`make start-cluster`, tests/cluster): several Zope instances on one
        # RelStorage database in PostgreSQL. psycopg2-binary is the driver RelStorage's
        # "postgresql" extra names (psycopg2), as a wheel: nothing to compile, no libpq-dev.
        "cluster": [
            "RelStorage>=4.3",
            "psycopg2-binary>=2.9",
        ],
    },
    entry_points={
        "z3c.autoinclude.plugin": ["target = plone"],
        "plone.autoinclude.plugin": ["target = plone"],
        "console_scripts": [
            "esign-bankid-test-server = esign.plone.testservers.bankid:main",
            "esign-oidc-test-server = esign.plone.testservers.oidc:main",
            "esign-mail-catcher = esign.plone.testservers.mail:main",
            "esign-tick = esign.plone.workflow.lifecycle:main",
        ],
        # zope.ini: [filter:esign_database] use = egg:esign.plone#database_guard
        "paste.filter_app_factory": ["database_guard = esign.plone.database:filter_app_factory"],
    },
)
