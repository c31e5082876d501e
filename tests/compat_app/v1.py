"""app.jobs, version 1: the code in production."""


def send_email(user_id, subject, body=""):
    return (user_id, subject, body)


def resize_image(path, width, height):
    return (path, width, height)


def charge_card(order_id, amount):
    return (order_id, amount)


def notify(user_id, *, channel="email"):
    return (user_id, channel)


def cleanup(days):
    return days


def old_report(account_id, month):
    return (account_id, month)


def export_csv(table, *, limit=100):
    return (table, limit)


def audit(event, actor=None):
    return (event, actor)


def sync_user(user_id, full):
    return (user_id, full)


def tag(item, label, /):
    return (item, label)


def log_many(*lines):
    return lines


def split(text, sep=","):
    return text.split(sep)
