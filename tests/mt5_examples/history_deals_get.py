import os
from datetime import datetime

import api.mt5 as mt5
import pandas as pd
pd.set_option('display.max_columns', 500) # number of columns to be displayed
pd.set_option('display.width', 1500)      # max table width to display
# display data on the MetaTrader 5 package
print("MetaTrader5 package author: ", mt5.__author__)
print("MetaTrader5 package version: ", mt5.__version__)
print()
# establish connection to the MetaTrader 5 terminal
if not mt5.initialize():
    print("initialize() failed, error code =", mt5.last_error())
    quit()

# get the number of deals in history
from_date = datetime(2020, 1, 1)
to_date = datetime.now()
# get deals for symbols whose names contain "AA" within a specified interval
deals = mt5.history_deals_get(from_date, to_date, group="*AA*")
if deals == None:
    print("No deals with group=\"*AA*\", error code={}".format(mt5.last_error()))
elif len(deals) > 0:
    print("history_deals_get({}, {}, group=\"*AA*\")={}".format(from_date, to_date, len(deals)))

# get deals for symbols whose names contain neither "MS" nor "NV"
deals = mt5.history_deals_get(from_date, to_date, group="*,!*MS*,!*NV*")
if deals == None:
    print("No deals, error code={}".format(mt5.last_error()))
elif len(deals) > 0:
    print("history_deals_get(from_date, to_date, group=\"*,!*MS*,!*NV*\") =", len(deals))
    # display all obtained deals 'as is'
    for deal in deals:
        print("  ", deal)
    print()
    # display these deals as a table using pandas.DataFrame
    df = pd.DataFrame(list(deals), columns=deals[0]._asdict().keys())
    df['time'] = pd.to_datetime(df['time'], unit='s')
    print(df)
print("")

# get all deals related to the position #530218319
position_id = int(os.environ.get("EXAMPLE_POSITION_ID", "530218319"))
position_deals = mt5.history_deals_get(position=position_id)
if position_deals == None:
    print("No deals with position #{}".format(position_id))
    print("error code =", mt5.last_error())
elif len(position_deals) > 0:
    print("Deals with position id #{}: {}".format(position_id, len(position_deals)))
    # display these deals as a table using pandas.DataFrame
    df = pd.DataFrame(list(position_deals), columns=position_deals[0]._asdict().keys())
    df['time'] = pd.to_datetime(df['time'], unit='s')
    print(df)

# shut down connection to the MetaTrader 5 terminal
mt5.shutdown()
