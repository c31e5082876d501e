"""app.jobs, version 2: every kind of change against v1, safe and breaking."""


def send_email(user_id: int, subject, body="", *, cc=None):  # new optional param, annotation: safe
    return (user_id, subject, body, cc)


def resize_image(path, width, height, quality):  # new required param
    return (path, width, height, quality)


def charge_card(order_id, total):  # renamed param
    return (order_id, total)


def notify(user_id, channel="email"):  # keyword-only -> positional-or-keyword
    return (user_id, channel)


# cleanup: deleted


def monthly_report(account_id, month):  # old_report renamed
    return (account_id, month)


def export_csv(table, *, limit):  # removed default
    return (table, limit)


def audit(event):  # removed param
    return (event,)


def sync_user(full, user_id):  # reordered positional params
    return (user_id, full)


def tag(thing, label, /):  # positional-only renamed: safe
    return (thing, label)


def log_many(first, *lines):  # new required positional before *args
    return (first, *lines)


def split(text, limit=0, sep=","):  # new optional param inserted before an existing positional one
    return text.split(sep)


def welcome(user_id):  # new job
    return user_id
