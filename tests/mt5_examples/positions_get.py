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

# get open positions on AAPL
positions = mt5.positions_get(symbol="AAPL")
if positions == None:
    print("No positions on AAPL, error code={}".format(mt5.last_error()))
elif len(positions) > 0:
    print("Total positions on AAPL =", len(positions))
    # display all open positions
    for position in positions:
        print(position)

# get the list of positions on symbols whose names contain "*A*"
a_positions = mt5.positions_get(group="*A*")
if a_positions == None:
    print("No positions with group=\"*A*\", error code={}".format(mt5.last_error()))
elif len(a_positions) > 0:
    print("positions_get(group=\"*A*\")={}".format(len(a_positions)))
    # display these positions as a table using pandas.DataFrame
    df = pd.DataFrame(list(a_positions), columns=a_positions[0]._asdict().keys())
    df['time'] = pd.to_datetime(df['time'], unit='s')
    df.drop(['time_update', 'time_msc', 'time_update_msc', 'external_id'], axis=1, inplace=True)
    print(df)

# shut down connection to the MetaTrader 5 terminal
mt5.shutdown()
