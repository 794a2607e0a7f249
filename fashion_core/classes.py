"""Class names and shopper keywords: the one place that knows Fashion-MNIST's labels."""

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Search words a shopper might type for each class; shown next to a prediction.
FASHION_MNIST_KEYWORDS = {
    "T-shirt/top": ("t-shirt", "tee", "top", "crew neck", "short sleeve"),
    "Trouser": ("trousers", "pants", "jeans", "chinos", "slacks"),
    "Pullover": ("pullover", "sweater", "jumper", "knitwear", "sweatshirt"),
    "Dress": ("dress", "gown", "sundress", "midi dress", "maxi dress"),
    "Coat": ("coat", "jacket", "parka", "overcoat", "outerwear"),
    "Sandal": ("sandals", "flip-flops", "slides", "summer shoes", "strappy sandals"),
    "Shirt": ("shirt", "blouse", "button-down", "long sleeve", "flannel"),
    "Sneaker": ("sneakers", "trainers", "running shoes", "canvas shoes", "low-top"),
    "Bag": ("bag", "handbag", "tote", "backpack", "purse"),
    "Ankle boot": ("ankle boots", "booties", "chelsea boots", "boots", "heeled boots"),
}


def keywords_for(class_name, catalogue_keywords=None):
    """Search keywords for a class: a catalogue's own (``catalogue_keywords``, {class: keywords},
    from its CSV's ``keywords`` column or ``keywords.csv``), else Fashion-MNIST's; a class we know
    nothing about gets its own name."""
    own = (catalogue_keywords or {}).get(class_name)
    if own:
        return tuple(own)
    return tuple(FASHION_MNIST_KEYWORDS.get(class_name, (class_name.lower(),)))
