"""app.jobs, version 3: v2's changes done the safe way, one transitional deploy each."""


def send_email(user_id: int, subject, body="", *, cc=None):
    return (user_id, subject, body, cc)


def resize_image(path, width, height, quality=85):  # a default first; required in a later deploy
    return (path, width, height, quality)


def charge_card(order_id, amount=None, total=None):  # both names while callers switch
    return (order_id, total if total is not None else amount)


def notify(user_id, *, channel="email"):
    return (user_id, channel)


def cleanup(days):  # still here: stop enqueuing, drain, then delete
    return days


def monthly_report(account_id, month):
    return (account_id, month)


def old_report(account_id, month):  # the old name as an alias until it is drained
    return monthly_report(account_id, month)


def export_csv(table, *, limit=100):
    return (table, limit)


def audit(event, *_old, **_ignored):  # old payloads may still pass actor, by place or by name
    return (event,)


def sync_user(user_id, full):
    return (user_id, full)


def tag(thing, label, /):
    return (thing, label)


def log_many(*lines):
    return lines


def split(text, sep=",", limit=0):
    return text.split(sep)


def welcome(user_id):
    return user_id
