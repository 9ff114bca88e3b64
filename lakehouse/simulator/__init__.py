"""Simulator stage: persistent Faker users and merchants, labelled fraud scenarios, bad records, and
the producer that streams them into Kafka."""
