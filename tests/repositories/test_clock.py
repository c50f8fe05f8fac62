"""Time arithmetic done by the database."""

from sqlalchemy import func, literal, select

from shared.db.repositories.clock import interval_seconds, seconds_ago


async def test_seconds_ago_is_the_database_now_minus_the_seconds(db):
    now, then = (await db.execute(select(func.now(), seconds_ago(90.5)))).one()
    assert (now - then).total_seconds() == 90.5


async def test_interval_seconds_turns_a_number_into_an_interval(db):
    now, later = (await db.execute(select(func.now(), func.now() + interval_seconds(literal(3600))))).one()
    assert (later - now).total_seconds() == 3600
