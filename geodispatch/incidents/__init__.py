"""geodispatch.incidents"""
