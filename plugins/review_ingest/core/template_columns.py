"""The four templates of the contract (section 1): their columns and limits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    max_length: int | None = None


COLUMNS: dict[str, Column] = {
    c.name: c
    for c in (
        Column("order_ref", 64),
        Column("email", 254),
        Column("lastname", 100),
        Column("firstname", 100),
        Column("order_date"),
        Column("delay"),
        Column("language"),
        Column("shop_id", 64),
        Column("id_product", 64),
        Column("name_product", 255),
        Column("url_product", 2048),
        Column("url_image_product", 2048),
        Column("gtin_ean"),
        Column("sku", 64),
        Column("brand_name", 100),
        Column("delay_product"),
    )
}

_BRAND_MANDATORY = ("order_ref", "email", "lastname", "firstname", "order_date")
_BRAND_OPTIONAL = ("delay", "language")
_PRODUCT_MANDATORY = ("id_product", "name_product")
_PRODUCT_OPTIONAL = (
    "url_product",
    "url_image_product",
    "gtin_ean",
    "sku",
    "brand_name",
    "delay_product",
)

#: Columns that must be equal on every row of one order in product templates.
ORDER_LEVEL = ("email", "lastname", "firstname", "order_date", "delay", "language", "shop_id")

#: Columns whose values are personal data: never in a message, a log line or the Data Docs.
PERSONAL = frozenset({"email", "lastname", "firstname"})


@dataclass(frozen=True)
class Template:
    id: str
    mandatory: tuple[str, ...]
    optional: tuple[str, ...]
    with_products: bool

    @property
    def columns(self) -> tuple[str, ...]:
        return self.mandatory + self.optional

    @property
    def key(self) -> tuple[str, ...]:
        """The columns that make a row a duplicate of an earlier one."""
        return ("order_ref", "id_product") if self.with_products else ("order_ref",)


def _template(id_: str, store: bool, products: bool) -> Template:
    mandatory = _BRAND_MANDATORY + (("shop_id",) if store else ())
    optional = _BRAND_OPTIONAL
    if products:
        mandatory += _PRODUCT_MANDATORY
        optional += _PRODUCT_OPTIONAL
    return Template(id_, mandatory, optional, products)


TEMPLATES: dict[str, Template] = {
    t.id: t
    for t in (
        _template("website", store=False, products=False),
        _template("store", store=True, products=False),
        _template("website_products", store=False, products=True),
        _template("store_products", store=True, products=True),
    )
}
