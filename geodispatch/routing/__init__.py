"""geodispatch.routing"""
