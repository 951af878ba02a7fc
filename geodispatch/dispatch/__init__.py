"""geodispatch.dispatch"""
