"""geodispatch.api"""
